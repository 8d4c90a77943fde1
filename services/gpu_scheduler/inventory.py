"""Where the scheduler's devices come from: a declared list, or NVML on this host.

- :func:`declared`: the ``gpus:`` list of the platform config, for hosts without GPUs
  (development, CI) and for tests. Nothing about it pretends to be hardware.
- :func:`from_nvml`: the NVIDIA driver's view through nvidia-ml-py: every card, or every
  MIG instance of a card that has MIG enabled (a MIG instance is scheduled like a card
  of its own, with its profile as the model).
"""

from __future__ import annotations

from collections.abc import Iterable

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
            if instances:
                devices.extend(instances)
            else:
                devices.append(Device(uuid, model, memory, index))
        return devices
    finally:
        nvml.nvmlShutdown()


def _mig_instances(nvml, handle, parent: str, index: int) -> list[Device]:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError:
        return []  # not a MIG-capable card
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return []
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
