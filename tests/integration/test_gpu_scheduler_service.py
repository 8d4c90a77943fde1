"""The GPU scheduler service run by a real hub, with a declared inventory of 2 GPUs.

Requests are made as the hub makes them for a spawn (its hub-only endpoint and shared
secret): a user's token cannot ask for GPUs (tests/security/test_gpu_leases.py)."""

import pytest
import requests

from gputest import SchedulerClient, gpu_hub_config
from hubtest import start_server, stop_server, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(hub_factory):
    profiles = [{"name": "cpu", "default": True}, {"name": "gpu", "gpus": 1}]
    # one check at start; these requests are for servers that never start
    config = gpu_hub_config(profiles, default_quota=1, quotas={"lab": 2}, check_every=3600)
    return hub_factory({**config, "culling": {"enabled": False}}, name="gpu")


@pytest.fixture(scope="module")
def api(hub):
    """The scheduler's API (``/capacity``, ...) with a hub token (None: none)."""
    return SchedulerClient(hub).api


@pytest.fixture(scope="module")
def ask(hub):
    """Ask for GPUs as the hub does for a spawn of ``user``'s server (``data``: a raw body)."""
    scheduler = SchedulerClient(hub)

    def call(user, **kw):
        if "data" in kw:
            return scheduler.as_hub("POST", "requests", data=kw["data"])
        return scheduler.ask(user, **kw.get("json", {}))

    return call


@pytest.fixture(scope="module")
def tokens(hub, api):
    admin = hub.admin()
    out = {"admin": admin.new_token("gpu admin")}
    for name in ("alice", "bob", "carol"):
        out[name] = hub.approved_user(admin, name).new_token("gpu")
    wait_for(
        lambda: api(out["alice"], "GET", "/capacity").status_code == 200,
        60,
        what="the GPU scheduler service",
    )
    return out


def test_capacity_and_quota(api, tokens):
    r = api(tokens["alice"], "GET", "/capacity")
    assert r.json() == {"models": {"A100": {"total": 2, "free": 2}}, "quota": 1, "used": 0}


def test_third_user_waits_with_position_then_gets_the_gpu(api, ask, tokens):
    r = ask("alice", json={"server": ""})
    assert r.status_code == 201
    assert r.json()["lease"]["devices"] == [
        {"uuid": "GPU-0", "model": "A100", "index": 0, "utilisation": None}
    ]
    assert ask("bob", json={}).status_code == 201
    r = ask("carol", json={"count": 1})
    assert r.status_code == 202
    waiting = r.json()["waiting"]
    assert waiting["position"] == 1 and waiting["eta_s"] > 0
    assert api(tokens["carol"], "GET", "/me").json()["waiting"][0]["position"] == 1
    # alice's server stops: carol gets the GPU
    assert api(tokens["alice"], "DELETE", "/requests/").json()["released"]
    me = api(tokens["carol"], "GET", "/me").json()
    assert me["waiting"] == [] and me["leases"][0]["devices"][0]["uuid"] == "GPU-0"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"count": 0}, "count must be at least 1, got 0"),
        ({"count": "x"}, "count must be a whole number, got 'x'"),
        ({"count": 5}, "asked for 5 GPUs, but there are 2 in all"),
        ({"model": "H100"}, "unknown GPU model 'H100'; this hub has: A100"),
        (
            {"devices": ["GPU-1"]},
            "unknown field 'devices'; allowed: user, groups, server, count, model, "
            "idle_timeout, max_lifetime",
        ),
    ],
)
def test_bad_requests_are_400_json(ask, tokens, body, message):
    r = ask("alice", json=dict(body, server="other"))
    assert r.status_code == 400
    assert r.json() == {"status": 400, "message": message}


def test_body_must_be_json(ask, tokens):
    r = ask("alice", data=b"count=1")
    assert r.status_code == 400 and r.json()["message"] == "the request body is not JSON"


def test_no_or_wrong_token(api):
    assert api(None, "GET", "/me").status_code in (401, 403)
    assert api("not-a-token", "GET", "/me").status_code in (401, 403)


def test_admin_endpoints(hub, api, tokens):
    assert api(tokens["bob"], "GET", "/admin/state").status_code == 403
    assert api(tokens["bob"], "PUT", "/admin/quotas", json={"lab": 5}).status_code == 403
    state = api(tokens["admin"], "GET", "/admin/state").json()
    assert sorted(lease["user"] for lease in state["leases"]) == ["bob", "carol"]
    # an admin's token limited to the service (like the one inside a server) is not enough
    r = requests.post(
        f"{hub.url}/hub/api/users/admin/tokens",
        headers={"Authorization": f"token {tokens['admin']}"},
        json={"scopes": ["access:services!service=gpu-scheduler"]},
        timeout=10,
    )
    limited = r.json()["token"]
    assert api(limited, "GET", "/me").status_code == 200
    assert api(limited, "GET", "/admin/state").status_code == 403
    # quotas change at run time; bad values are refused
    r = api(tokens["admin"], "PUT", "/admin/quotas", json={"lab": -1})
    assert r.status_code == 400
    assert api(tokens["admin"], "PUT", "/admin/quotas", json={"lab": 3}).json() == {
        "quotas": {"lab": 3}
    }
    # reclaim bob's lease
    bob = next(x for x in state["leases"] if x["user"] == "bob")
    r = api(tokens["admin"], "POST", f"/admin/leases/{bob['id']}/reclaim")
    assert r.status_code == 200
    assert api(tokens["bob"], "GET", "/me").json()["leases"] == []


def test_metrics(hub, tokens):
    url = f"{hub.url}/services/gpu-scheduler/metrics"
    r = requests.get(url, headers={"Authorization": f"token {tokens['admin']}"}, timeout=10)
    assert 'dlhub_gpus_total{model="A100"} 2.0' in r.text
    assert 'dlhub_gpus_leased{model="A100"} 1.0' in r.text
    # waits (alice, bob at once; carol after alice) and lease durations (alice, bob)
    assert "dlhub_gpu_wait_seconds_count 3.0" in r.text
    assert "dlhub_gpu_lease_seconds_count 2.0" in r.text
    assert 'dlhub_gpus_leased_idle{model="A100"} 0.0' in r.text


def test_state_survives_a_hub_restart(hub, api, ask, tokens):
    before = api(tokens["admin"], "GET", "/admin/state").json()
    assert before["leases"]  # carol's, for a server that never started
    # both GPUs held (carol's and bob's): alice's server waits, its start dies with the hub
    assert ask("bob", json={"server": "fill"}).status_code == 201
    waits = ask("alice", json={"server": "q"})
    assert waits.status_code == 202, waits.text
    first = waits.json()["waiting"]
    hub.stop()
    hub.start()
    wait_for(
        lambda: api(tokens["admin"], "GET", "/admin/state").status_code == 200,
        60,
        what="the GPU scheduler after the restart",
    )
    after = api(tokens["admin"], "GET", "/admin/state").json()
    assert after["quotas"] == {"lab": 3}
    # the check at start releases the leases of servers that do not run
    wait_for(
        lambda: api(tokens["admin"], "GET", "/admin/state").json()["leases"] == [],
        10,
        what="the first check to release leases without a server",
    )
    # the waiting request is orphaned, not granted; asked again, it keeps its place (and,
    # the GPUs being free now, gets one at once)
    assert api(tokens["admin"], "GET", "/admin/state").json()["waiting"] == []
    again = ask("alice", json={"server": "q"})
    assert again.status_code == 201, again.text
    assert again.json()["place"] == "kept" and again.json()["orphan_grace_s"] == 600
    assert first["queued_at"] == first["submitted_at"]
    assert api(tokens["alice"], "DELETE", "/requests/q").json()["released"]


def scheduler_pid(hub) -> int:
    """The pid of this hub's GPU scheduler process (found by its database path)."""
    from pathlib import Path

    marker = str(hub.data_dir / "gpu-scheduler.sqlite").encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"gpu_scheduler" in cmdline and marker in environ:
            return int(proc.name)
    raise AssertionError("the GPU scheduler process was not found")


def checks(hub) -> int:
    """How many checks the scheduler has made (each reads the hub's active servers)."""
    return hub.log().count("GET /hub/api/users?state=[secret] (gpu-scheduler@")


def test_killed_scheduler_comes_back_with_nothing_lost_or_doubled(hub, api, tokens):
    import os
    import signal

    # a real GPU server holds a lease
    start_server(hub.url, tokens["bob"], "bob", {"profile": "gpu"})
    before = api(tokens["admin"], "GET", "/admin/state").json()
    assert [x["user"] for x in before["leases"]] == ["bob"]
    pid = scheduler_pid(hub)
    checks_before = checks(hub)
    os.kill(pid, signal.SIGKILL)

    def back():
        r = api(tokens["admin"], "GET", "/admin/state")
        return r.status_code == 200 and scheduler_pid(hub) != pid

    # the hub notices its service died and starts it again
    wait_for(back, 90, interval=1, what="the hub to restart the GPU scheduler")
    after = api(tokens["admin"], "GET", "/admin/state").json()
    key = lambda state: sorted(  # noqa: E731
        [(x["id"], tuple(d["uuid"] for d in x["devices"])) for x in state["leases"]]
    )
    assert key(after) == key(before)
    assert [w["id"] for w in after["waiting"]] == [w["id"] for w in before["waiting"]]
    # and the check of the restarted scheduler keeps it: the server runs with it
    wait_for(lambda: checks(hub) > checks_before, 30, what="the restarted scheduler's first check")
    assert key(api(tokens["admin"], "GET", "/admin/state").json()) == key(before)
    stop_server(hub.url, tokens["bob"], "bob")
    assert api(tokens["admin"], "GET", "/admin/state").json()["leases"] == []


def test_a_second_scheduler_on_the_same_database_stops_and_the_first_serves_on(hub, api, tokens):
    """Only one scheduler per database (gpu_scheduler.single): a second one started with
    the running one's environment stops at once, before it reads or writes anything."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    pid = scheduler_pid(hub)
    environ = dict(
        x.split("=", 1) for x in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in x
    )
    with socket.socket() as s:  # another port: the lock, not the port, stops it
        s.bind(("127.0.0.1", 0))
        environ["JUPYTERHUB_SERVICE_URL"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "gpu_scheduler"],
        env={**environ, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert second.returncode != 0
    database = hub.data_dir / "gpu-scheduler.sqlite"
    assert f"another GPU scheduler runs on the database {database}" in second.stderr
    assert "(pid " in second.stderr and "gpu-scheduler.lock" in second.stderr  # who holds it
    assert "Traceback" not in second.stderr
    print(f"a second scheduler stopped in {took:.2f} s")
    assert scheduler_pid(hub) == pid
    assert api(tokens["admin"], "GET", "/admin/state").status_code == 200


def test_hub_only_endpoints_refuse_users(hub, api, tokens):
    # a user's token (or none, or a wrong secret) cannot act for the hub
    for headers in (
        {"Authorization": f"token {tokens['alice']}"},
        {},
        {"Authorization": "dlhub-hub x"},
    ):
        r = requests.post(
            f"{hub.url}/services/gpu-scheduler/api/hub/requests",
            headers=headers,
            json={"user": "bob", "count": 1},
            timeout=10,
        )
        assert r.status_code == 403
        assert r.json()["message"] == "only the hub may use this endpoint"
