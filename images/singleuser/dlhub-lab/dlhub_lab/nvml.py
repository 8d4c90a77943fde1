"""The memory and utilisation of this server's GPUs, read through NVIDIA's NVML (no
Jupyter imports: :mod:`.gpu_usage` serves it).

``GET <base_url>dlhub/gpu-usage`` answers ``{"gpus": [{"index", "uuid", "name",
"memory_used", "memory_total", "utilization"}, ...]}`` (bytes, percent), which the
`dlhub-gpu-notices` lab extension shows in JupyterLab's status bar beside the memory and
CPU of jupyter-resource-usage. Only the GPUs this server may use are listed: in a container
the NVIDIA runtime exposes just the leased ones; on the local backend ``CUDA_VISIBLE_DEVICES``
names them (indices or UUIDs; empty: none). Without NVML (no driver, a CPU-only server, no
``pynvml`` module) the list is empty: the status bar shows nothing.
"""

from __future__ import annotations

try:  # nvidia-ml-py; absent in an environment without it
    import pynvml
except ImportError:  # pragma: no cover - depends on the environment
    pynvml = None


def visible(entries: list[dict], cuda_visible: str | None) -> list[dict]:
    """The GPUs of ``entries`` that ``CUDA_VISIBLE_DEVICES`` allows (None: all), in its
    order; an entry is named by its index or its UUID (``GPU-...``)."""
    if cuda_visible is None:
        return entries
    chosen = []
    for name in (n.strip() for n in cuda_visible.split(",")):
        for entry in entries:
            if name and (name == str(entry["index"]) or name == entry["uuid"]):
                if entry not in chosen:
                    chosen.append(entry)
    return chosen


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _memory(handle):
    """Memory as nvidia-smi shows it (version 2: the driver's reserve is not "used")."""
    try:
        return pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    except (pynvml.NVMLError, AttributeError, TypeError):  # an older driver or binding
        return pynvml.nvmlDeviceGetMemoryInfo(handle)


def read_gpus() -> list[dict]:
    """Every GPU NVML sees, or [] when NVML cannot be used here."""
    if pynvml is None:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = _memory(handle)
            try:
                utilization = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            except pynvml.NVMLError:  # e.g. a MIG slice
                utilization = None
            gpus.append(
                {
                    "index": index,
                    "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "memory_used": int(memory.used),
                    "memory_total": int(memory.total),
                    "utilization": utilization,
                }
            )
        return gpus
    except pynvml.NVMLError:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
