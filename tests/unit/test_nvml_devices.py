"""The host's real GPUs, from NVML to the server's process (marked ``gpu``; skipped on a
host without an NVIDIA driver).

The scheduler reads the inventory from NVML, leases a GPU by the UUID NVML gave, the
local spawner puts that UUID in ``CUDA_VISIBLE_DEVICES``, and a process started with the
spawner's environment can use exactly that GPU (the CUDA driver's own count and UUIDs,
and PyTorch's where it is installed); a server without a lease, or with the id of a GPU
this host does not have, can use none. The scheduler service reads the same inventory
from the platform config, and NVML's utilisation of a leased GPU rises while a process
computes on it (what the idle check reads)."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from gpu_scheduler.inventory import from_nvml, utilisation
from gpu_scheduler.model import Request
from gpu_scheduler.policy import Scheduler
from gputest import CUDA_UUIDS, TORCH_UUIDS, devices_seen, host_has_gpu

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not host_has_gpu(), reason="no NVIDIA GPU on this host"),
]

#: the id of a GPU no host has
ELSEWHERE = "GPU-00000000-0000-0000-0000-000000000000"


def spawner(name: str):
    from jupyterhub.objects import Hub

    from hub_config.spawners import LocalSpawner

    user = SimpleNamespace(name=name, id=1, url=f"/user/{name}/", groups=[])
    return LocalSpawner(user=user, hub=Hub())


def smi(*fields: str) -> list[list[str]]:
    query = ",".join(fields)
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [[v.strip() for v in line.split(",")] for line in out.strip().splitlines()]


@pytest.fixture(scope="module")
def lease():
    """One GPU of this host leased to alice, as the scheduler grants it."""
    whole = [d for d in from_nvml() if d.parent is None]
    if not whole:
        pytest.skip("every GPU here is split into MIG instances")
    scheduler = Scheduler(whole, default_quota=len(whole))
    (granted,) = scheduler.submit(Request("r1", "alice", "", 1, 0.0), 0.0).granted
    return granted


def test_nvml_agrees_with_nvidia_smi():
    devices = {d.uuid: d for d in from_nvml() if d.parent is None}
    listed = smi("uuid", "name", "memory.total")
    assert sorted(devices) == sorted(uuid for uuid, _, _ in listed)
    for uuid, name, memory in listed:
        assert devices[uuid].model == name
        assert devices[uuid].memory_mib == int(memory)


def test_the_leased_gpu_is_the_one_the_server_process_sees(lease):
    (uuid,) = lease.devices
    alice = spawner("alice")
    alice.assign_gpus(list(lease.devices))
    env = alice.get_env()
    assert env["CUDA_VISIBLE_DEVICES"] == uuid
    seen = devices_seen(env, CUDA_UUIDS)
    assert seen is not None, "a process with the spawner's environment finds no CUDA driver"
    assert seen == [uuid]
    by_torch = devices_seen(env, TORCH_UUIDS)
    if by_torch is not None:
        assert by_torch == [uuid]


def test_a_server_without_a_lease_sees_no_gpu():
    env = spawner("bob").get_env()
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert devices_seen(env, CUDA_UUIDS) in ([], None)
    assert devices_seen(env, TORCH_UUIDS) in ([], None)


def test_the_id_of_a_gpu_elsewhere_gives_no_gpu():
    carol = spawner("carol")
    carol.assign_gpus([ELSEWHERE])
    assert devices_seen(carol.get_env(), CUDA_UUIDS) in ([], None)


def test_the_scheduler_service_reads_this_hosts_gpus():
    from gpu_scheduler.service import scheduler_from_config
    from hub_config.config import validate

    cfg = validate({"gpus": {"enabled": True, "inventory": "nvml", "default_quota": 1}})
    scheduler = scheduler_from_config(cfg)
    names = [name for (name,) in smi("name")]
    assert len(scheduler.devices) == len(names)
    for name in set(names):
        assert scheduler.capacity(name) == names.count(name)


LOAD = """
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    for _ in range(20):
        a @ a
    torch.cuda.synchronize()
print("done")
"""


def test_utilisation_of_a_leased_gpu_rises_under_load(lease):
    pytest.importorskip("torch")
    (uuid,) = lease.devices
    alice = spawner("alice")
    alice.assign_gpus([uuid])
    before = utilisation([uuid])[uuid]
    worker = subprocess.Popen(
        [sys.executable, "-c", LOAD.format(seconds=8)],
        env=alice.get_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        samples = []
        deadline = time.monotonic() + 30
        while worker.poll() is None and time.monotonic() < deadline:
            samples.append(utilisation([uuid])[uuid])
            time.sleep(0.5)
    finally:
        if worker.poll() is None:
            worker.kill()
    out, _ = worker.communicate()
    assert "done" in out
    assert max(samples) > 50, (before, samples)
