"""The NVML inventory's MIG path, on any host: a stand-in driver (:class:`StandInNVML`)
answers the pynvml calls :mod:`gpu_scheduler.inventory` makes, with pynvml's own error
classes and constants; the real driver is checked in test_inventory.py where a GPU is.

A card with MIG enabled is listed as its MIG instances (each scheduled like a card of its
own, its profile as the model, the card as its parent), and a card with MIG enabled but
no instance yet offers nothing (no CUDA work runs on the card itself then); a card with
MIG off, or one that cannot do MIG, is listed whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml
import pytest

from gpu_scheduler.inventory import InventoryError, from_nvml, utilisation
from gpu_scheduler.model import Device

GIB = 2**30


@dataclass
class Card:
    uuid: str
    name: str
    memory: int
    #: None: the card cannot do MIG (NVMLError on asking); else whether it is enabled
    mig: bool | None = None
    #: MIG slots: None for an empty slot
    instances: list = field(default_factory=list)
    busy: int = 0


@dataclass
class Instance:
    uuid: str
    name: str
    memory: int


class StandInNVML:
    """The pynvml functions the inventory calls, answered from a list of :class:`Card`.

    Names come back as bytes when ``as_bytes`` (nvidia-ml-py before 11.5 did), as str
    otherwise. Every call needs ``nvmlInit`` first, as the driver does."""

    NVMLError = pynvml.NVMLError
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE
    NVML_DEVICE_MIG_DISABLE = pynvml.NVML_DEVICE_MIG_DISABLE

    def __init__(self, cards: list[Card], as_bytes=False, init_error=None):
        self.cards = cards
        self.as_bytes = as_bytes
        self.init_error = init_error
        self.open = 0
        self.inits = 0

    def _text(self, value: str):
        return value.encode() if self.as_bytes else value

    def _need_init(self):
        if self.open < 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def nvmlInit(self):
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.open += 1
        self.inits += 1

    def nvmlShutdown(self):
        self._need_init()
        self.open -= 1

    def nvmlDeviceGetCount(self):
        self._need_init()
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._need_init()
        return self.cards[index]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self._need_init()
        for card in self.cards:
            for device in (card, *[x for x in card.instances if x]):
                if device.uuid == uuid:
                    return device
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle):
        self._need_init()
        return self._text(handle.uuid)

    def nvmlDeviceGetName(self, handle):
        self._need_init()
        return self._text(handle.name)

    def nvmlDeviceGetMemoryInfo(self, handle):
        self._need_init()
        return SimpleNamespace(total=handle.memory, free=handle.memory, used=0)

    def nvmlDeviceGetMigMode(self, handle):
        self._need_init()
        if handle.mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = self.NVML_DEVICE_MIG_ENABLE if handle.mig else self.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        self._need_init()
        return len(handle.instances)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, slot):
        self._need_init()
        instance = handle.instances[slot]
        if instance is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return instance

    def nvmlDeviceGetUtilizationRates(self, handle):
        self._need_init()
        if isinstance(handle, Instance):  # no counter of its own
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(gpu=handle.busy, memory=0)


def mixed_host() -> list[Card]:
    """A T4 (no MIG), an A100 with MIG on (two 1g.5gb and a 3g.20gb, one empty slot),
    and an A100 with MIG off."""
    return [
        Card("GPU-t4", "Tesla T4", 16 * GIB, mig=None, busy=40),
        Card(
            "GPU-a100-mig",
            "NVIDIA A100-SXM4-40GB",
            40 * GIB,
            mig=True,
            instances=[
                Instance("MIG-aaaa", "NVIDIA A100-SXM4-40GB MIG 1g.5gb", 4864 * 2**20),
                None,
                Instance("MIG-bbbb", "NVIDIA A100-SXM4-40GB MIG 1g.5gb", 4864 * 2**20),
                Instance("MIG-cccc", "NVIDIA A100-SXM4-40GB MIG 3g.20gb", 19968 * 2**20),
            ],
        ),
        Card("GPU-a100-whole", "NVIDIA A100-SXM4-40GB", 40 * GIB, mig=False, busy=7),
    ]


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_mig_instances_are_devices_and_other_cards_are_whole(as_bytes):
    nvml = StandInNVML(mixed_host(), as_bytes=as_bytes)
    devices = from_nvml(nvml=nvml)
    a100 = "NVIDIA A100-SXM4-40GB"
    assert devices == [
        Device("GPU-t4", "Tesla T4", 16384, 0),
        Device("MIG-aaaa", f"{a100} MIG 1g.5gb", 4864, 1, parent="GPU-a100-mig"),
        Device("MIG-bbbb", f"{a100} MIG 1g.5gb", 4864, 1, parent="GPU-a100-mig"),
        Device("MIG-cccc", f"{a100} MIG 3g.20gb", 19968, 1, parent="GPU-a100-mig"),
        Device("GPU-a100-whole", a100, 40960, 2),
    ]
    assert nvml.open == 0 and nvml.inits == 1  # shut down again


def test_a_mig_card_without_instances_offers_nothing():
    # leasing the card itself would give a server a GPU on which no CUDA work runs
    card = Card("GPU-empty", "NVIDIA H100 80GB HBM3", 80 * GIB, mig=True, instances=[None] * 7)
    assert from_nvml(nvml=StandInNVML([card])) == []


def test_mig_instances_are_scheduled_one_by_one_within_their_profile():
    from gpu_scheduler.model import Request
    from gpu_scheduler.policy import Scheduler

    s = Scheduler(from_nvml(nvml=StandInNVML(mixed_host())), default_quota=9)
    small = "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
    assert s.capacity(small) == 2 and s.capacity("NVIDIA A100-SXM4-40GB") == 1
    (lease,) = s.submit(Request("r1", "alice", "", 2, 0, model=small), 0).granted
    assert sorted(lease.devices) == ["MIG-aaaa", "MIG-bbbb"]


def test_no_driver_says_what_to_do():
    nvml = StandInNVML([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.raises(InventoryError, match="declare the GPUs in the platform config"):
        from_nvml(nvml=nvml)


def test_the_driver_is_shut_down_when_reading_fails():
    class Broken(StandInNVML):
        def nvmlDeviceGetMemoryInfo(self, handle):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    nvml = Broken(mixed_host())
    with pytest.raises(pynvml.NVMLError):
        from_nvml(nvml=nvml)
    assert nvml.open == 0


def test_utilisation_of_whole_cards_and_none_for_mig_instances():
    nvml = StandInNVML(mixed_host())
    busy = utilisation(["GPU-t4", "MIG-aaaa", "GPU-a100-whole", "GPU-gone"], nvml=nvml)
    assert busy == {"GPU-t4": 40, "GPU-a100-whole": 7}
    assert nvml.open == 0
