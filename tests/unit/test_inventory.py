"""Where devices come from: the declared list, and NVML (real, where a GPU is present)."""

import json
import re
from pathlib import Path

import pytest

from gpu_scheduler.inventory import InventoryError, declared, from_nvml, utilisation
from gpu_scheduler.model import Device
from gputest import RecordedNVML, host_has_gpu

#: what real drivers answered (``tools/gpu_check.py record``), replayed on any host
RECORDED = Path(__file__).resolve().parents[1] / "data"


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


@pytest.mark.parametrize("name", sorted(p.name for p in RECORDED.glob("nvml-*.json")))
def test_a_recorded_driver_gives_the_gpus_nvidia_smi_listed(name):
    recorded = json.loads((RECORDED / name).read_text())
    nvml = RecordedNVML(recorded)
    devices = from_nvml(nvml=nvml)
    whole = [card for card in recorded["devices"] if not card["mig_devices"]]
    assert [d.uuid for d in devices if d.parent is None] == [card["uuid"] for card in whole]
    assert {d.uuid for d in devices} <= set(
        re.findall(r"UUID: (\S+)\)", recorded["nvidia_smi_list"])
    )
    for device, card in zip(devices, whole, strict=False):
        assert (device.model, device.index) == (card["name"], card["index"])
        assert device.memory_mib == card["memory"]["total"] // 2**20
    busy = utilisation([d.uuid for d in devices], nvml=nvml)
    assert busy == {card["uuid"]: card["utilization"]["gpu"] for card in whole}
    assert nvml.open == 0  # shut down again


def test_an_h200_is_one_whole_gpu_with_mig_off():
    """The H200 of the lent machine (driver 580.159.04): MIG mode [0, 0] and no MIG slots
    (nvmlDeviceGetMaxMigDeviceCount answers 0 while MIG is off), 143771 MiB as nvidia-smi."""
    recorded = json.loads((RECORDED / "nvml-h200.json").read_text())
    uuid = recorded["devices"][0]["uuid"]
    assert from_nvml(nvml=RecordedNVML(recorded)) == [Device(uuid, "NVIDIA H200", 143771, 0)]


# --- Kubernetes nodes ---------------------------------------------------------------------

PRODUCT = "nvidia.com/gpu.product"


def node(name, allocatable, labels=None):
    """A Node object as GET /api/v1/nodes has it (the parts the inventory reads)."""
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "status": {"capacity": dict(allocatable), "allocatable": dict(allocatable)},
    }


def test_nodes_with_gpus_and_without():
    from gpu_scheduler.inventory import devices_from_nodes

    nodes = [
        node("gpu-b", {"cpu": "64", "nvidia.com/gpu": "2"}, {PRODUCT: "Tesla-T4"}),
        node("cpu-1", {"cpu": "8", "memory": "32Gi"}),
        node(
            "gpu-a",
            {"nvidia.com/gpu": "1"},
            {PRODUCT: "NVIDIA-A100-SXM4-40GB", "nvidia.com/gpu.memory": "40960"},
        ),
        node("gpu-c", {"nvidia.com/gpu": "0"}, {PRODUCT: "Tesla-T4"}),
    ]
    devices = devices_from_nodes(nodes, PRODUCT)
    assert [(d.uuid, d.model, d.memory_mib, d.index) for d in devices] == [
        ("gpu-a/NVIDIA-A100-SXM4-40GB/0", "NVIDIA-A100-SXM4-40GB", 40960, 0),
        ("gpu-b/Tesla-T4/0", "Tesla-T4", 0, 0),
        ("gpu-b/Tesla-T4/1", "Tesla-T4", 0, 1),
    ]


def test_node_without_product_label_has_model_gpu():
    from gpu_scheduler.inventory import devices_from_nodes

    devices = devices_from_nodes([node("n1", {"nvidia.com/gpu": "1"})], PRODUCT)
    assert [(d.uuid, d.model) for d in devices] == [("n1//0", "gpu")]
    # another label is read when configured
    labelled = node("n1", {"nvidia.com/gpu": "1"}, {"example.com/model": "L4"})
    assert devices_from_nodes([labelled], "example.com/model")[0].model == "L4"


def test_mig_resources_are_devices_of_their_profile():
    from gpu_scheduler.inventory import devices_from_nodes

    labels = {
        PRODUCT: "A100-SXM4-40GB",
        "nvidia.com/mig-1g.5gb.memory": "4864",
    }
    allocatable = {"nvidia.com/mig-1g.5gb": "2", "nvidia.com/mig-3g.20gb": "1"}
    devices = devices_from_nodes([node("a100", allocatable, labels)], PRODUCT)
    assert [(d.uuid, d.model, d.memory_mib, d.index) for d in devices] == [
        ("a100/A100-SXM4-40GB/mig-1g.5gb/0", "A100-SXM4-40GB MIG 1g.5gb", 4864, 0),
        ("a100/A100-SXM4-40GB/mig-1g.5gb/1", "A100-SXM4-40GB MIG 1g.5gb", 4864, 1),
        ("a100/A100-SXM4-40GB/mig-3g.20gb/0", "A100-SXM4-40GB MIG 3g.20gb", 0, 0),
    ]


def test_odd_quantities_and_missing_status_are_no_gpus():
    from gpu_scheduler.inventory import devices_from_nodes

    odd = node("n1", {"nvidia.com/gpu": "1k"})
    bare = {"metadata": {"name": "n2"}}
    assert devices_from_nodes([odd, bare], PRODUCT) == []


def test_kubeconfig_with_a_token(tmp_path):
    import asyncio

    import yaml

    from gpu_scheduler.inventory import api_client

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": True},
            }
        ],
        "users": [{"name": "u", "user": {"token": "sa-token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))

    async def read():
        api = await api_client({"KUBECONFIG": str(path)})
        await api.close()
        return api.configuration

    configuration = asyncio.run(read())
    assert configuration.host == "https://10.0.0.1:6443"
    assert configuration.api_key == {"BearerToken": "Bearer sa-token"}
    assert configuration.verify_ssl is False


def test_not_in_a_cluster_says_what_to_do(tmp_path, monkeypatch):
    import asyncio

    from gpu_scheduler.inventory import api_client

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(InventoryError, match="KUBECONFIG"):
        asyncio.run(api_client({}))
    with pytest.raises(InventoryError, match="cannot read the kubeconfig"):
        asyncio.run(api_client({"KUBECONFIG": str(tmp_path / "none")}))


def test_watch_events_change_the_nodes_and_their_devices():
    from gpu_scheduler.inventory import apply_event, devices_from_nodes, summary

    nodes: dict[str, dict] = {}
    apply_event(nodes, "ADDED", node("n1", {"nvidia.com/gpu": "0"}))
    assert devices_from_nodes(nodes.values(), PRODUCT) == []
    apply_event(nodes, "MODIFIED", node("n1", {"nvidia.com/gpu": "2"}))
    apply_event(nodes, "ADDED", node("n2", {"nvidia.com/gpu": "1"}, {PRODUCT: "L4"}))
    devices = devices_from_nodes(nodes.values(), PRODUCT)
    assert [d.uuid for d in devices] == ["n1//0", "n1//1", "n2/L4/0"]
    assert summary(devices) == "3 GPUs (1 L4, 2 gpu)"
    apply_event(nodes, "BOOKMARK", {"kind": "Node", "metadata": {"resourceVersion": "9"}})
    apply_event(nodes, "DELETED", node("n1", {}))
    assert sorted(nodes) == ["n2"]
    assert summary([]) == "0 GPUs"


def test_scheduler_from_config_reads_the_cluster(monkeypatch):
    from gpu_scheduler import service
    from gpu_scheduler.model import Device
    from hub_config.config import validate

    seen = []

    async def fake(label):
        seen.append(label)
        return [Device("n/T4/0", "T4"), Device("n/T4/1", "T4")]

    monkeypatch.setattr(service, "from_kubernetes", fake)
    cfg = validate(
        {
            "backend": "kubernetes",
            "gpus": {"enabled": True, "inventory": "kubernetes"},
            "kubernetes": {"gpu_product_label": "example.com/model"},
        }
    )
    scheduler = service.scheduler_from_config(cfg)
    assert sorted(scheduler.devices) == ["n/T4/0", "n/T4/1"]
    assert seen == ["example.com/model"]
