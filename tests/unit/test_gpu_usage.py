"""The status bar's GPU list (dlhub-lab's ``dlhub_lab/nvml.py``, loaded alone: it needs
no Jupyter): only the GPUs this server may use, and nothing where NVML is missing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "images/singleuser/dlhub-lab/dlhub_lab/nvml.py"

GPUS = [
    {"index": 0, "uuid": "GPU-aaaa", "name": "T4", "memory_used": 1, "memory_total": 2},
    {"index": 1, "uuid": "GPU-bbbb", "name": "T4", "memory_used": 1, "memory_total": 2},
]


@pytest.fixture(scope="module")
def nvml():
    spec = importlib.util.spec_from_file_location("dlhub_lab_nvml", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("cuda_visible", "indices"),
    [
        (None, [0, 1]),  # a container: the runtime shows only the leased GPUs
        ("", []),  # no lease on the local backend
        ("1", [1]),
        ("GPU-bbbb,GPU-aaaa", [1, 0]),
        ("7", []),
        ("0, 0", [0]),
    ],
)
def test_only_the_visible_gpus(nvml, cuda_visible, indices):
    assert [g["index"] for g in nvml.visible(GPUS, cuda_visible)] == indices


def test_no_nvml_means_no_gpus_and_no_error(nvml, monkeypatch):
    monkeypatch.setattr(nvml, "pynvml", None)
    assert nvml.read_gpus() == []


RECORDED = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("name", sorted(p.name for p in RECORDED.glob("nvml-*.json")))
def test_a_recorded_driver_in_the_status_bar(nvml, monkeypatch, name):
    """What a real driver answered (tests/data/nvml-*.json), read the status bar's way."""
    from gputest import RecordedNVML

    recorded = json.loads((RECORDED / name).read_text())
    monkeypatch.setattr(nvml, "pynvml", RecordedNVML(recorded))
    gpus = nvml.read_gpus()
    cards = recorded["devices"]
    assert [(g["index"], g["uuid"], g["name"]) for g in gpus] == [
        (c["index"], c["uuid"], c["name"]) for c in cards
    ]
    assert [(g["memory_total"], g["memory_used"]) for g in gpus] == [
        (c["memory"]["total"], c["memory"]["used"]) for c in cards
    ]
    assert [g["utilization"] for g in gpus] == [c["utilization"]["gpu"] for c in cards]
    assert nvml.visible(gpus, cards[0]["uuid"]) == gpus[:1]
    assert nvml.visible(gpus, "") == []


@pytest.mark.gpu
def test_this_hosts_gpus_in_the_status_bar_as_nvidia_smi_lists_them(nvml):
    """On a host with an NVIDIA driver: the real NVML read gives what nvidia-smi shows, and
    a server given one GPU's UUID (the local backend's lease) lists that one alone."""
    from gputest import host_has_gpu

    if not host_has_gpu():
        pytest.skip("no NVIDIA GPU on this host")
    if nvml.pynvml is None:
        pytest.fail("nvidia-ml-py is missing where a GPU is present")
    listed = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=index,uuid,name,memory.total",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    smi = [[f.strip() for f in line.split(",")] for line in listed.strip().splitlines()]
    gpus = nvml.read_gpus()
    assert [(str(g["index"]), g["uuid"], g["name"]) for g in gpus] == [
        (i, u, n) for i, u, n, _ in smi
    ]
    assert [g["memory_total"] // 2**20 for g in gpus] == [int(m) for *_, m in smi]
    assert all(0 <= g["utilization"] <= 100 for g in gpus)
    assert nvml.visible(gpus, gpus[-1]["uuid"]) == gpus[-1:]
