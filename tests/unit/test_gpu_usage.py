"""The status bar's GPU list (dlhub-lab's ``dlhub_lab/nvml.py``, loaded alone: it needs
no Jupyter): only the GPUs this server may use, and nothing where NVML is missing."""

from __future__ import annotations

import importlib.util
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
