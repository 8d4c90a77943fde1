"""Where the scheduler's devices come from: a declared list, NVML on this host, or the
Kubernetes cluster's nodes.

- :func:`declared`: the ``gpus:`` list of the platform config, for hosts without GPUs
  (development, CI) and for tests. Nothing about it pretends to be hardware.
- :func:`from_nvml`: the NVIDIA driver's view through nvidia-ml-py: every card, or every
  MIG instance of a card that has MIG enabled (a MIG instance is scheduled like a card
  of its own, with its profile as the model).
- :func:`from_kubernetes`: the GPUs the cluster's nodes advertise (allocatable
  ``nvidia.com/gpu`` and ``nvidia.com/mig-<profile>``, set by NVIDIA's device plugin), with
  the model from the node's product label, through ``kubernetes_asyncio``. The running
  scheduler follows the nodes live (:class:`NodeWatch`): a GPU node that joins or leaves
  changes the capacity within seconds. The pure part is :func:`devices_from_nodes` and
  :func:`apply_event`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable

from .contract import GPU_RESOURCE, MIG_PREFIX, device_id
from .model import Device


class InventoryError(RuntimeError):
    """No inventory could be read; the message says what to do."""


def declared(entries: Iterable[dict]) -> list[Device]:
    """Devices from config entries ``{uuid, model, memory_mib?}``, indexed in order."""
    devices = []
    for index, entry in enumerate(entries):
        devices.append(
            Device(
                uuid=str(entry["uuid"]),
                model=str(entry["model"]),
                memory_mib=int(entry.get("memory_mib", 0)),
                index=index,
            )
        )
    return devices


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def from_nvml(nvml=None) -> list[Device]:
    """Devices of this host as NVML reports them (MIG instances instead of MIG cards)."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            message = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            raise InventoryError(message) from None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:
        raise InventoryError(
            f"NVML is not available ({e}); on a host without NVIDIA GPUs declare the "
            "GPUs in the platform config instead"
        ) from None
    try:
        devices = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            model = _text(nvml.nvmlDeviceGetName(handle))
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20
            instances = _mig_instances(nvml, handle, uuid, index)
            if instances is None:
                devices.append(Device(uuid, model, memory, index))
            else:
                devices.extend(instances)  # none yet: no CUDA work runs on the card itself
        return devices
    finally:
        nvml.nvmlShutdown()


def _mig_instances(nvml, handle, parent: str, index: int) -> list[Device] | None:
    """The MIG instances of a card with MIG enabled; None when MIG is off or unsupported."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError:
        return None  # not a MIG-capable card
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return None
    out = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError:
            continue  # an empty slot
        out.append(
            Device(
                uuid=_text(nvml.nvmlDeviceGetUUID(mig)),
                model=_text(nvml.nvmlDeviceGetName(mig)),
                memory_mib=nvml.nvmlDeviceGetMemoryInfo(mig).total // 2**20,
                index=index,
                parent=parent,
            )
        )
    return out


def utilisation(uuids: Iterable[str], nvml=None) -> dict[str, int]:
    """GPU utilisation (percent, last sample period) of the given devices.

    A MIG instance has no utilisation counter of its own; it is left out (its lease is
    judged by the hub's activity data alone)."""
    if nvml is None:
        import pynvml as nvml
    nvml.nvmlInit()
    try:
        out = {}
        for uuid in uuids:
            try:
                handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
                out[uuid] = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except nvml.NVMLError:
                continue
        return out
    finally:
        nvml.nvmlShutdown()


# --- Kubernetes ---------------------------------------------------------------------------

# The extended resource of whole GPUs, the prefix of MIG instances' resources and the
# devices' ids are the hub's and the scheduler's contract (:mod:`.contract`).
#: GPU feature discovery's labels: memory per GPU in MiB (and per MIG profile).
MEMORY_LABEL = "nvidia.com/gpu.memory"
DEFAULT_PRODUCT_LABEL = "nvidia.com/gpu.product"


def _count(value) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0  # not a plain count (a quantity like "1k" is not one a GPU plugin sets)


def devices_from_nodes(
    nodes: Iterable[dict], product_label: str = DEFAULT_PRODUCT_LABEL
) -> list[Device]:
    """The GPUs of Node objects (dicts as the API's JSON has them), in node-name order.

    A node with allocatable ``nvidia.com/gpu`` N gives N devices ``<node>/<product>/<i>``
    of model ``<product>`` (the node's ``product_label``; "gpu" when it has none, and then
    the id's product part is empty). Each ``nvidia.com/mig-<profile>`` resource gives
    devices ``<node>/<product>/mig-<profile>/<i>`` of model ``<product> MIG <profile>``.
    The ids are :func:`.contract.device_id`'s; the hub places a server by them
    (:func:`.contract.parse_device`): on that node, with that product, asking for that
    resource.
    """
    devices: list[Device] = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        product = labels.get(product_label, "")
        model = product or "gpu"
        memory = _count(labels.get(MEMORY_LABEL, 0))
        for index in range(_count(allocatable.get(GPU_RESOURCE, 0))):
            uuid = device_id(name, product, index)
            devices.append(Device(uuid, model, memory, index, host=name))
        for resource in sorted(allocatable):
            if not resource.startswith(MIG_PREFIX):
                continue
            profile = resource[len(MIG_PREFIX) :]
            mig_memory = _count(labels.get(f"{MIG_PREFIX}{profile}.memory", 0))
            for index in range(_count(allocatable[resource])):
                devices.append(
                    Device(
                        uuid=device_id(name, product, index, resource),
                        model=f"{model} MIG {profile}",
                        memory_mib=mig_memory,
                        index=index,
                        host=name,
                    )
                )
    return devices


def apply_event(nodes: dict[str, dict], kind: str, node: dict) -> None:
    """Apply one watch event (``ADDED``, ``MODIFIED``, ``DELETED``) to ``nodes`` (Node
    objects by name, as the API's JSON has them); other events (``BOOKMARK``: only a
    resourceVersion) change nothing."""
    if kind in ("ADDED", "MODIFIED"):
        nodes[node["metadata"]["name"]] = node
    elif kind == "DELETED":
        nodes.pop(node["metadata"]["name"], None)


def summary(devices: Iterable[Device]) -> str:
    """``"3 GPUs (2 Tesla-T4, 1 L4)"``: a log line's account of an inventory."""
    devices = list(devices)
    models: dict[str, int] = {}
    for device in devices:
        models[device.model] = models.get(device.model, 0) + 1
    each = ", ".join(f"{n} {model}" for model, n in sorted(models.items()))
    return f"{len(devices)} GPUs" + (f" ({each})" if each else "")


async def api_client(environ=None):
    """A ``kubernetes_asyncio`` client: from the kubeconfig in ``KUBECONFIG`` when set
    (tests, a scheduler outside the cluster; of a list, the first file), else from the
    pod's own service account."""
    from kubernetes_asyncio import client, config

    environ = os.environ if environ is None else environ
    configuration = client.Configuration()
    try:
        if environ.get("KUBECONFIG"):
            path = environ["KUBECONFIG"].split(os.pathsep)[0]
            await config.load_kube_config(config_file=path, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as e:
        if environ.get("KUBECONFIG"):
            raise InventoryError(f"cannot read the kubeconfig {path}: {e}") from None
        raise InventoryError(
            f"not running in a Kubernetes pod with a service account ({e}); "
            "set KUBECONFIG to a kubeconfig file instead"
        ) from None
    return client.ApiClient(configuration)


def _refused(e) -> InventoryError:
    detail = e.reason
    try:
        detail = json.loads(e.body).get("message", detail)
    except (TypeError, ValueError, AttributeError):
        pass
    return InventoryError(f"the Kubernetes API refused to list the nodes ({e.status}): {detail}")


class NodeWatch:
    """The cluster's GPUs, followed live: list the nodes, then watch them from that list's
    resourceVersion; each change of the devices (:func:`devices_from_nodes`) is logged in
    one line and handed to ``on_change``. The watch is renewed when the server ends it,
    the list is read again when the server has forgotten the resourceVersion (410 Gone),
    and after an error it retries with a growing pause (``backoff``: first and largest,
    in seconds)."""

    def __init__(
        self,
        api_client,
        product_label: str = DEFAULT_PRODUCT_LABEL,
        log=None,
        on_change=None,
        backoff: tuple[float, float] = (1.0, 30.0),
        timeout_seconds: int = 300,
    ):
        from kubernetes_asyncio import client

        self.api = client.CoreV1Api(api_client)
        self.product_label = product_label
        self.log = log or logging.getLogger("gpu_scheduler")
        self.on_change = on_change
        self.backoff = backoff
        self.timeout_seconds = timeout_seconds
        #: Node objects by name (the API's JSON)
        self.nodes: dict[str, dict] = {}
        self.resource_version = ""
        #: the devices last seen (None before the first list, which is always logged)
        self.devices: list[Device] | None = None

    async def list(self) -> list[Device]:
        """Read every node now (InventoryError when the API refuses) and return the devices."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            listed = await self.api.list_node()
        except ApiException as e:
            raise _refused(e) from None
        self.resource_version = listed.metadata.resource_version
        sanitize = self.api.api_client.sanitize_for_serialization
        self.nodes = {n.metadata.name: sanitize(n) for n in listed.items}
        self._changed()
        return list(self.devices)

    async def run(self) -> None:
        """Follow the nodes until cancelled (a task in the scheduler's event loop)."""
        from kubernetes_asyncio import watch
        from kubernetes_asyncio.client.exceptions import ApiException

        pause = self.backoff[0]
        while True:
            try:
                if not self.resource_version:
                    await self.list()
                async with watch.Watch() as w:
                    stream = w.stream(
                        self.api.list_node,
                        resource_version=self.resource_version,
                        allow_watch_bookmarks=True,
                        timeout_seconds=self.timeout_seconds,
                        # a connection gone silent ends too (the server ends it before)
                        _request_timeout=self.timeout_seconds + 30,
                    )
                    async for event in stream:
                        node = event["raw_object"]
                        version = node.get("metadata", {}).get("resourceVersion")
                        if version:
                            self.resource_version = version
                        apply_event(self.nodes, event["type"], node)
                        if event["type"] != "BOOKMARK":
                            self._changed()
                        pause = self.backoff[0]
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status != 410:
                    self.log.warning("Watching the nodes failed (%s %s); retrying in %ss",
                                     e.status, e.reason, pause)  # fmt: skip
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, self.backoff[1])
                self.resource_version = ""  # read the whole list again
            except Exception as e:
                self.log.warning("Watching the nodes failed (%r); retrying in %ss", e, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.backoff[1])
                self.resource_version = ""

    def _changed(self) -> None:
        devices = devices_from_nodes(self.nodes.values(), self.product_label)
        if devices == self.devices:
            return
        self.devices = devices
        self.log.info("GPU inventory from the cluster's nodes: %s", summary(devices))
        if self.on_change is not None:
            self.on_change(devices)


async def from_kubernetes(product_label: str = DEFAULT_PRODUCT_LABEL, environ=None):
    """The GPUs of the cluster's nodes now (:func:`devices_from_nodes`), read once."""
    api = await api_client(environ)
    try:
        return await NodeWatch(api, product_label, log=logging.getLogger(__name__)).list()
    finally:
        await api.close()
