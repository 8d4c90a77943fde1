"""Where the scheduler's devices come from: a declared list, NVML on this host, or the
Kubernetes cluster's nodes.

- :func:`declared`: the ``gpus:`` list of the platform config, for hosts without GPUs
  (development, CI) and for tests. Nothing about it pretends to be hardware.
- :func:`from_nvml`: the NVIDIA driver's view through nvidia-ml-py: every card, or every
  MIG instance of a card that has MIG enabled (a MIG instance is scheduled like a card
  of its own, with its profile as the model).
- :func:`from_kubernetes`: the GPUs the cluster's nodes advertise (allocatable
  ``nvidia.com/gpu`` and ``nvidia.com/mig-<profile>``, set by NVIDIA's device plugin), with
  the model from the node's product label. Read once, when the scheduler starts: GPU nodes
  added later are seen after a restart of the scheduler. The pure part is
  :func:`devices_from_nodes`.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

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
#: Where a pod finds its service account's credentials.
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


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


class ApiAccess:
    """How to reach the Kubernetes API: its URL, an SSL context, maybe a bearer token."""

    def __init__(self, server: str, context: ssl.SSLContext, token: str = ""):
        self.server = server.rstrip("/")
        self.context = context
        self.token = token

    @classmethod
    def in_cluster(cls, root: Path = SERVICE_ACCOUNT, environ=None) -> ApiAccess:
        """The pod's service account (token and CA) and the API's address from the env."""
        environ = os.environ if environ is None else environ
        host = environ.get("KUBERNETES_SERVICE_HOST", "")
        port = environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host or not (root / "token").exists():
            raise InventoryError(
                "not running in a Kubernetes pod with a service account token; "
                "set KUBECONFIG to a kubeconfig file instead"
            )
        host = f"[{host}]" if ":" in host else host
        context = ssl.create_default_context(cafile=str(root / "ca.crt"))
        return cls(f"https://{host}:{port}", context, (root / "token").read_text().strip())

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike) -> ApiAccess:
        """The current context of a kubeconfig (YAML or JSON): its cluster's server and CA,
        its user's token or client certificate."""
        import yaml

        path = Path(path)
        try:
            config = yaml.safe_load(path.read_text())
            contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
            context = contexts[config["current-context"]]
            cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
            user = {u["name"]: u["user"] for u in config.get("users") or []}.get(
                context.get("user"), {}
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
            raise InventoryError(f"cannot read the kubeconfig {path}: {e!r}") from None
        base = path.parent
        ssl_context = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
            ssl_context.load_verify_locations(cadata=ca)
        elif cluster.get("certificate-authority"):
            ssl_context.load_verify_locations(cafile=str(base / cluster["certificate-authority"]))
        cert = _pem(user, "client-certificate", base)
        key = _pem(user, "client-key", base)
        if cert and key:
            # ssl loads a client certificate only from files
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "cert.pem").write_bytes(cert)
                (Path(tmp) / "key.pem").write_bytes(key)
                ssl_context.load_cert_chain(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")
        token = user.get("token", "")
        if not token and user.get("tokenFile"):
            token = (base / user["tokenFile"]).read_text().strip()
        return cls(cluster["server"], ssl_context, token)

    def get(self, path: str, timeout: float = 10) -> dict:
        request = urllib.request.Request(self.server + path)
        request.add_header("Accept", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        # the API server is inside the cluster: never through an HTTP proxy
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.context)
        )
        try:
            with opener.open(request, timeout=timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except ValueError:
                pass
            raise InventoryError(
                f"the Kubernetes API refused GET {path} ({e.code}): {detail}"
            ) from None
        except (OSError, ssl.SSLError) as e:
            raise InventoryError(
                f"cannot reach the Kubernetes API at {self.server}: {e}"
            ) from None


def _pem(user: dict, key: str, base: Path) -> bytes:
    if user.get(f"{key}-data"):
        return base64.b64decode(user[f"{key}-data"])
    if user.get(key):
        return (base / user[key]).read_bytes()
    return b""


def api_access(environ=None) -> ApiAccess:
    """The kubeconfig in ``KUBECONFIG`` when set (tests, a scheduler outside the cluster),
    else the pod's own service account."""
    environ = os.environ if environ is None else environ
    if environ.get("KUBECONFIG"):
        # a list of files is kubectl's; the first one is used here
        return ApiAccess.from_kubeconfig(environ["KUBECONFIG"].split(os.pathsep)[0])
    return ApiAccess.in_cluster(environ=environ)


def from_kubernetes(
    product_label: str = DEFAULT_PRODUCT_LABEL, access: ApiAccess | None = None
) -> list[Device]:
    """The GPUs of the cluster's nodes now (:func:`devices_from_nodes`)."""
    access = access or api_access()
    nodes = access.get("/api/v1/nodes")
    return devices_from_nodes(nodes.get("items", []), product_label)
