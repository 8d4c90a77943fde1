"""Spawning with GPUs through the scheduler: 2 declared GPUs, 3 users, the third waits."""

import json

import pytest
import requests

from gputest import SchedulerClient, gpu_hub_config
from hubtest import run_code, start_server, stop_server, token_api, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(hub_factory):
    profiles = [
        {"name": "gpu", "display_name": "One GPU", "gpus": 1, "default": True},
        {"name": "cpu", "display_name": "CPU only"},
    ]
    config = {**gpu_hub_config(profiles), "culling": {"enabled": False}}
    return hub_factory(config, name="gpuspawn")


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def tokens(hub, admin):
    out = {"admin": admin.new_token("admin")}
    for name in ("alice", "bob", "carol"):
        out[name] = hub.approved_user(admin, name).new_token("gpu spawn")
    return out


def visible_devices(hub, token, user):
    out = run_code(hub.url, token, user, "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])")
    return out["stdout"].strip()


def progress_messages(hub, token, user, until: str, timeout=60):
    """Read the spawn's progress event stream until a message contains ``until``."""
    url = f"{hub.url}/hub/api/users/{user}/server/progress"
    headers = {"Authorization": f"token {token}"}
    seen = []
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                seen.append(event.get("message", ""))
                if until in event.get("message", ""):
                    return seen
    raise AssertionError(f"no progress message with {until!r}; saw {seen}")


def test_third_user_waits_in_the_queue_and_starts_when_a_gpu_is_free(hub, tokens):
    start_server(hub.url, tokens["alice"], "alice")
    start_server(hub.url, tokens["bob"], "bob")
    assert {visible_devices(hub, tokens[u], u) for u in ("alice", "bob")} == {"GPU-0", "GPU-1"}

    r = token_api(hub.url, tokens["carol"], "POST", "/hub/api/users/carol/server", json={})
    assert r.status_code == 202
    seen = progress_messages(hub, tokens["carol"], "carol", "Waiting for a GPU: position 1")
    assert any("about" in m and "min" in m for m in seen)

    alice_gpu = visible_devices(hub, tokens["alice"], "alice")
    stop_server(hub.url, tokens["alice"], "alice")

    def carol_ready():
        model = token_api(hub.url, tokens["carol"], "GET", "/hub/api/users/carol").json()
        return model["servers"].get("", {}).get("ready")

    wait_for(carol_ready, 60, what="carol's server to start with the freed GPU")
    assert visible_devices(hub, tokens["carol"], "carol") == alice_gpu
    for user in ("bob", "carol"):
        stop_server(hub.url, tokens[user], user)
    state = scheduler_state(hub, tokens["admin"])
    assert state["leases"] == [] and state["waiting"] == []


def test_spawn_form_shows_free_gpus_and_quota(hub, admin, tokens):
    dora = hub.approved_user(admin, "dora")
    page = dora.get(dora.url("/hub/spawn")).text
    assert "One GPU" in page and "1 GPU" in page
    assert "GPUs free; you hold 0 of your quota of 1" in page


def test_admin_reclaim_stops_the_server(hub, tokens):
    start_server(hub.url, tokens["alice"], "alice")
    (lease,) = scheduler_state(hub, tokens["admin"])["leases"]
    r = SchedulerClient(hub).api(tokens["admin"], "POST", f"admin/leases/{lease['id']}/reclaim")
    assert r.status_code == 200

    def stopped():
        model = token_api(hub.url, tokens["alice"], "GET", "/hub/api/users/alice").json()
        return "" not in model["servers"]

    wait_for(stopped, 30, what="the reclaimed server to stop")
    assert scheduler_state(hub, tokens["admin"])["leases"] == []


def test_cpu_profile_sees_no_gpu(hub, tokens):
    r = token_api(
        hub.url, tokens["alice"], "POST", "/hub/api/users/alice/server", json={"profile": "cpu"}
    )
    assert r.status_code in (201, 202)

    def ready():
        model = token_api(hub.url, tokens["alice"], "GET", "/hub/api/users/alice").json()
        return model["servers"].get("", {}).get("ready")

    wait_for(ready, 60, what="alice's CPU server")
    try:
        assert visible_devices(hub, tokens["alice"], "alice") == ""
    finally:
        stop_server(hub.url, tokens["alice"], "alice")


@pytest.fixture(scope="module")
def reclaiming_hub(hub_factory):
    profiles = [{"name": "gpu", "gpus": 1, "gpu_idle_timeout": 6}]
    config = {**gpu_hub_config(profiles, count=1, check_every=2), "culling": {"enabled": False}}
    return hub_factory(config, name="gpureclaim")


def scheduler_state(hub, token):
    return SchedulerClient(hub).state(token)


def test_idle_gpu_is_reclaimed_and_orphan_leases_released(reclaiming_hub):
    hub = reclaiming_hub
    admin = hub.admin()
    token = admin.new_token("reclaim")
    start_server(hub.url, token, "admin")
    assert [x["user"] for x in scheduler_state(hub, token)["leases"]] == ["admin"]

    def stopped():
        model = token_api(hub.url, token, "GET", "/hub/api/users/admin").json()
        return "" not in model["servers"]

    # nobody uses the server: the scheduler stops it and takes the GPU back
    wait_for(stopped, 60, interval=1, what="the idle GPU server to be stopped")
    wait_for(lambda: scheduler_state(hub, token)["leases"] == [], 20, what="the lease to go")

    # a lease the hub asked for, for a server that never starts, goes at the next check
    r = SchedulerClient(hub).ask("admin", server="never-started")
    assert r.status_code == 201
    wait_for(lambda: scheduler_state(hub, token)["leases"] == [], 5, what="the orphan release")


def test_borrowed_gpu_is_taken_back_for_a_user_within_quota(hub_factory):
    config = gpu_hub_config(
        [{"name": "gpu", "gpus": 1}], count=1, check_every=2, default_quota=0, quotas={"lab": 1}
    )
    hub = hub_factory({**config, "culling": {"enabled": False}}, name="gpuborrow")
    admin = hub.admin()
    token = admin.new_token("borrow")
    for name in ("alice", "bob"):
        assert token_api(hub.url, token, "POST", f"/hub/api/users/{name}", json={}).status_code
    token_api(hub.url, token, "POST", "/hub/api/groups/lab", json={})
    token_api(hub.url, token, "POST", "/hub/api/groups/lab/users", json={"users": ["alice"]})

    # bob has no quota, but the GPU is idle: he borrows it
    start_server(hub.url, token, "bob")
    (lease,) = scheduler_state(hub, token)["leases"]
    assert lease["user"] == "bob" and lease["borrowed"]

    # alice (quota 1 through her group) asks: bob's borrowed GPU is taken back for her
    r = token_api(hub.url, token, "POST", "/hub/api/users/alice/server", json={})
    assert r.status_code in (201, 202)

    def alice_ready():
        model = token_api(hub.url, token, "GET", "/hub/api/users/alice").json()
        return model["servers"].get("", {}).get("ready")

    wait_for(alice_ready, 60, what="alice to get the GPU bob borrowed")
    bob = token_api(hub.url, token, "GET", "/hub/api/users/bob").json()
    assert "" not in bob["servers"]
    (lease,) = scheduler_state(hub, token)["leases"]
    assert lease["user"] == "alice" and not lease["borrowed"]
    assert scheduler_state(hub, token)["unleased_servers"] == []

    # the scheduler loses alice's lease behind the hub's back: her running GPU server is
    # reported
    r = SchedulerClient(hub).give_back("alice")
    assert r.status_code == 200
    wait_for(
        lambda: (
            scheduler_state(hub, token)["unleased_servers"] == [{"user": "alice", "server": ""}]
        ),
        30,
        what="the unleased GPU server to be reported",
    )
    stop_server(hub.url, token, "alice")
