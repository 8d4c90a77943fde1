"""Checklist item 10: a CPU server sees no GPU, a GPU server only its own.

Two declared GPUs (no GPU needed). Local: a CPU server gets ``CUDA_VISIBLE_DEVICES=""``;
two GPU servers get one lease each, different devices, exactly the lease's. Docker: a CPU
server's container has no device request, no device and ``NVIDIA_VISIBLE_DEVICES=void``
(no GPU even where NVIDIA's runtime is the engine's default); a GPU server's container
asks the engine for exactly its lease's device ids (on a host without the NVIDIA runtime
the engine then refuses to start it, and the lease is given back). The NVML path (the
host's real GPUs, CUDA's own count in the server) is marked ``gpu``.
"""

from __future__ import annotations

import shutil
import threading

import pytest
from securitykit import BACKENDS, container, create_users

from gputest import SchedulerClient, declared_gpus, gpu_hub_config
from hubtest import free_port, run_ok, start_server, stop_server, token_api, wait_for

pytestmark = pytest.mark.integration

DECLARED = declared_gpus(2)
PROFILES = [{"name": "cpu", "default": True}, {"name": "gpu", "gpus": 1}]


@pytest.fixture(scope="module", params=BACKENDS)
def hub(request, hubs):
    hub = hubs.start(request.param, gpu_hub_config(PROFILES, count=len(DECLARED)), name="gpuiso")
    yield hub
    hubs.stop(hub)


@pytest.fixture(scope="module")
def tokens(hub):
    admin = hub.admin()
    out = {"admin": admin.new_token("gpu isolation")}
    out.update(create_users(hub, out["admin"], "alice", "bob"))
    return out


def leases(hub, tokens) -> dict[str, list[str]]:
    state = SchedulerClient(hub).state(tokens["admin"])
    return {x["user"]: [d["uuid"] for d in x["devices"]] for x in state["leases"]}


def visible(hub, token, user) -> str:
    return run_ok(
        hub.url, token, user, "import os; print(repr(os.environ.get('CUDA_VISIBLE_DEVICES')))"
    )


def test_a_cpu_server_sees_no_gpu(hub, tokens, request):
    start_server(hub.url, tokens["alice"], "alice", options={"profile": "cpu"})
    try:
        assert visible(hub, tokens["alice"], "alice") == "''"
        assert "alice" not in leases(hub, tokens)
        devices = run_ok(
            hub.url, tokens["alice"], "alice", "import glob; print(glob.glob('/dev/nvidia*'))"
        )
        if hub.backend == "docker":
            assert devices == "[]"
            c = container(request.getfixturevalue("engine"), hub, "alice")
            host = c.attrs["HostConfig"]
            assert not host.get("DeviceRequests")
            assert not host.get("Devices") and host.get("Privileged") is False
            env = c.attrs["Config"]["Env"]
            assert "NVIDIA_VISIBLE_DEVICES=void" in env and "CUDA_VISIBLE_DEVICES=" in env
    finally:
        stop_server(hub.url, tokens["alice"], "alice")


def test_gpu_servers_see_only_their_own_devices(hub, tokens):
    if hub.backend == "docker":
        pytest.skip("docker: test_a_gpu_container_asks_for_exactly_its_lease")
    for user in ("alice", "bob"):
        start_server(hub.url, tokens[user], user, options={"profile": "gpu"})
    try:
        held = leases(hub, tokens)
        assert sorted(held) == ["alice", "bob"]
        assert len(held["alice"]) == 1 and len(held["bob"]) == 1
        assert held["alice"] != held["bob"]
        for user in ("alice", "bob"):
            assert visible(hub, tokens[user], user) == repr(",".join(held[user]))
    finally:
        for user in ("alice", "bob"):
            stop_server(hub.url, tokens[user], user)
    assert leases(hub, tokens) == {}


def test_a_gpu_container_asks_for_exactly_its_lease(hub, tokens, request):
    if hub.backend != "docker":
        pytest.skip("local: test_gpu_servers_see_only_their_own_devices")
    engine = request.getfixturevalue("engine")
    name = f"{hub.names['prefix']}-alice"
    created: list[dict] = []
    events = engine.events(decode=True, filters={"type": "container", "event": "create"})

    def watch():
        for event in events:
            if event.get("Actor", {}).get("Attributes", {}).get("name") == name:
                created.append(engine.api.inspect_container(event["id"]))
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    r = token_api(
        hub.url, tokens["alice"], "POST", "/hub/api/users/alice/server", json={"profile": "gpu"}
    )
    # 503: the engine refused at once (no NVIDIA runtime), with the message saying so
    assert r.status_code in (201, 202, 503), r.text

    def settled():
        model = token_api(hub.url, tokens["alice"], "GET", "/hub/api/users/alice").json()
        server = model["servers"].get("")
        return "stopped" if server is None else ("ready" if server["ready"] else None)

    how = wait_for(settled, 120, what="alice's GPU spawn to end")
    held = leases(hub, tokens)
    watcher.join(30)
    events.close()
    try:
        assert created, "the container was never created"
        host = created[0]["HostConfig"]
        (device_request,) = host["DeviceRequests"]
        assert device_request["Driver"] == "nvidia"
        assert device_request["Capabilities"] == [["gpu"]]
        (device,) = device_request["DeviceIDs"]
        assert device in {d["uuid"] for d in DECLARED}
        assert not device_request.get("Count")  # ids, never "all"
        assert not host.get("Devices") and host.get("Privileged") is False
        assert "NVIDIA_VISIBLE_DEVICES=void" not in created[0]["Config"]["Env"]
        if how == "ready":  # a host with the NVIDIA runtime
            assert held == {"alice": [device]}
        else:  # no NVIDIA runtime: refused, and the lease is given back
            assert held == {}
    finally:
        if how == "ready":
            stop_server(hub.url, tokens["alice"], "alice")


def test_without_gpu_scheduling_no_server_sees_a_gpu(hubs):
    """GPUs are handed out by the scheduler only: with it off, a local server gets
    ``CUDA_VISIBLE_DEVICES=""`` (a docker container gets no device request at all)."""
    hub = hubs.start("local", {"profiles": [{"name": "cpu", "default": True}]}, name="nogpus")
    try:
        token = hub.admin().new_token("no scheduler")
        start_server(hub.url, token, "admin")
        assert visible(hub, token, "admin") == "''"
        stop_server(hub.url, token, "admin")
    finally:
        hubs.stop(hub)


# --- the NVML path: the host's real GPUs ---------------------------------------------

CUDA_COUNT = """
import ctypes
try:
    cuda = ctypes.CDLL("libcuda.so.1")
except OSError as e:
    print("no-libcuda")
else:
    count = ctypes.c_int(0)
    rc = cuda.cuInit(0)
    if rc == 0:
        cuda.cuDeviceGetCount(ctypes.byref(count))
    print(count.value)
"""


@pytest.fixture(scope="module")
def nvml_hub(hubs):
    if shutil.which("nvidia-smi") is None:
        pytest.skip("this host has no NVIDIA GPU (no nvidia-smi)")
    config = {
        "gpus": {"enabled": True, "inventory": "nvml", "port": free_port()},
        "profiles": PROFILES,
    }
    hub = hubs.start("local", config, name="nvml")
    yield hub
    hubs.stop(hub)


@pytest.mark.gpu
def test_nvml_gpu_server_sees_its_gpu_and_a_cpu_server_none(nvml_hub):
    hub = nvml_hub
    admin = hub.admin()
    tokens = {"admin": admin.new_token("nvml")}
    tokens.update(create_users(hub, tokens["admin"], "alice", "bob"))
    start_server(hub.url, tokens["alice"], "alice", options={"profile": "gpu"})
    start_server(hub.url, tokens["bob"], "bob", options={"profile": "cpu"})
    try:
        (device,) = leases(hub, tokens)["alice"]
        assert device.startswith(("GPU-", "MIG-"))
        assert visible(hub, tokens["alice"], "alice") == repr(device)
        assert visible(hub, tokens["bob"], "bob") == "''"
        # CUDA itself counts one device for alice and none for bob
        alice_count = run_ok(hub.url, tokens["alice"], "alice", CUDA_COUNT)
        if alice_count != "no-libcuda":
            assert alice_count == "1"
            assert run_ok(hub.url, tokens["bob"], "bob", CUDA_COUNT) == "0"
    finally:
        for user in ("alice", "bob"):
            stop_server(hub.url, tokens[user], user)
