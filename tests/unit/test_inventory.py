"""Where devices come from: the declared list, and NVML (real, where a GPU is present)."""

import os
import shutil

import pytest

from gpu_scheduler.inventory import InventoryError, declared, from_nvml


def host_has_gpu() -> bool:
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


def test_declared_inventory():
    devices = declared(
        [
            {"uuid": "GPU-a", "model": "A100", "memory_mib": 40960},
            {"uuid": "GPU-b", "model": "T4"},
        ]
    )
    assert [(d.uuid, d.model, d.memory_mib, d.index) for d in devices] == [
        ("GPU-a", "A100", 40960, 0),
        ("GPU-b", "T4", 0, 1),
    ]


@pytest.mark.skipif(host_has_gpu(), reason="this host has a GPU: see the gpu test")
def test_nvml_missing_says_what_to_do():
    with pytest.raises(InventoryError) as info:
        from_nvml()
    assert "declare the GPUs in the platform config" in str(info.value)


@pytest.mark.gpu
@pytest.mark.skipif(not host_has_gpu(), reason="no NVIDIA GPU on this host")
def test_nvml_discovers_this_hosts_gpus():
    import subprocess

    devices = from_nvml()
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    assert devices, "NVML found no device"
    for device in devices:
        assert device.uuid.startswith(("GPU-", "MIG-"))
        assert device.uuid in listed
        assert device.memory_mib > 0


@pytest.mark.gpu
@pytest.mark.skipif(not host_has_gpu(), reason="no NVIDIA GPU on this host")
def test_nvml_utilisation_of_this_hosts_gpus():
    from gpu_scheduler.inventory import utilisation

    devices = [d for d in from_nvml() if d.parent is None]
    busy = utilisation([d.uuid for d in devices])
    assert set(busy) == {d.uuid for d in devices}
    assert all(0 <= v <= 100 for v in busy.values())
