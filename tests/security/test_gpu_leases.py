"""Checklist (6): GPU leases only for servers the hub starts with a GPU profile.

The scheduler makes a lease only when the hub asks (for a spawn with a GPU profile); a
user's own token is refused, whatever server it names. A lease whose server does not run
with it is released within one check (``gpus.check_every``), while a spawn that waits for
its GPUs keeps its place and then its lease. Two declared GPUs, the default quota 1, on
the local backend (the scheduler is the same on every backend).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from securitykit import create_users

from gpu_scheduler.service import HUB_ONLY_REQUESTS
from gputest import SchedulerClient, gpu_hub_config
from hubtest import start_server, stop_server, token_api, wait_for

pytestmark = pytest.mark.integration

CHECK_EVERY = 3  # seconds between the scheduler's checks


@pytest.fixture(scope="module")
def hub(hubs):
    profiles = [
        {"name": "cpu", "display_name": "CPU only", "default": True},
        {"name": "gpu", "display_name": "One GPU", "gpus": 1},
    ]
    config = gpu_hub_config(profiles, default_quota=1, check_every=CHECK_EVERY)
    # the hub notices a dead server within 2 s
    return hubs.start("local", {**config, "hub": {"poll_interval": 2}}, name="gpuleases")


@pytest.fixture(scope="module")
def admin_token(hub):
    return hub.admin().new_token("gpu leases")


@pytest.fixture(scope="module")
def tokens(hub, admin_token):
    return create_users(hub, admin_token, "alice", "bob", "carol", "dan")


def scheduler(hub, token, method, path, **kw):
    """The scheduler's API through the proxy, as a user or an admin calls it."""
    return SchedulerClient(hub).api(token, method, path, **kw)


def leases(hub, admin_token) -> list[dict]:
    r = scheduler(hub, admin_token, "GET", "/admin/state")
    assert r.status_code == 200, r.text
    return r.json()["leases"]


def held(hub, admin_token) -> dict[tuple[str, str], dict]:
    return {(x["user"], x["server"]): x for x in leases(hub, admin_token)}


def as_the_hub(hub, method, path, **kw):
    """The scheduler's hub-only endpoint, with the secret the hub shares with it."""
    return SchedulerClient(hub).as_hub(method, path, **kw)


def assert_refused(r: requests.Response) -> None:
    assert r.status_code == 403, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": 403, "message": HUB_ONLY_REQUESTS}


def test_a_users_token_gets_no_lease_for_a_server_that_does_not_exist(hub, admin_token, tokens):
    for body in ({"server": "ghost", "count": 1}, {"server": ""}, {"count": 2}):
        assert_refused(scheduler(hub, tokens["alice"], "POST", "/requests", json=body))
    assert leases(hub, admin_token) == []
    capacity = scheduler(hub, tokens["alice"], "GET", "/capacity").json()
    assert capacity["models"] == {"A100": {"total": 2, "free": 2}} and capacity["used"] == 0


def test_a_users_token_gets_no_lease_for_their_running_cpu_server(hub, admin_token, tokens):
    start_server(hub.url, tokens["alice"], "alice", {"profile": "cpu"})
    assert_refused(scheduler(hub, tokens["alice"], "POST", "/requests", json={"server": ""}))
    # nor through the hub's own endpoint, with a user's token in its place
    r = requests.post(
        f"{hub.url}/services/gpu-scheduler/api/hub/requests",
        headers={"Authorization": f"token {tokens['alice']}"},
        json={"user": "alice", "server": "", "count": 1},
        timeout=10,
    )
    assert r.status_code == 403 and r.json()["message"] == "only the hub may use this endpoint"
    assert leases(hub, admin_token) == []


def test_a_user_with_quota_1_never_holds_2_gpus(hub, admin_token, tokens):
    start_server(hub.url, tokens["bob"], "bob", {"profile": "gpu"})
    (lease,) = leases(hub, admin_token)
    assert (lease["user"], lease["server"], len(lease["devices"])) == ("bob", "", 1)
    for body in ({"server": "second"}, {"server": "", "count": 2}, {"server": "x", "count": 1}):
        assert_refused(scheduler(hub, tokens["bob"], "POST", "/requests", json=body))
    # the GPU count is the profile's, not the user's
    r = token_api(
        hub.url,
        tokens["bob"],
        "POST",
        "/hub/api/users/bob/servers/two",
        json={"profile": "gpu", "gpus": 2},
    )
    assert 400 <= r.status_code < 500, r.text
    assert [x["user"] for x in leases(hub, admin_token)] == ["bob"]
    capacity = scheduler(hub, tokens["bob"], "GET", "/capacity").json()
    assert (capacity["quota"], capacity["used"]) == (1, 1)


def released_within_one_check(hub, admin_token, key) -> float:
    """Seconds until the lease of ``key`` is gone (at most one check and a little)."""
    started = time.monotonic()
    wait_for(
        lambda: key not in held(hub, admin_token),
        CHECK_EVERY + 3,
        interval=0.2,
        what=f"the lease of {key} to be released by one check",
    )
    return time.monotonic() - started


def test_a_lease_whose_server_does_not_run_with_it_is_released_within_one_check(
    hub, admin_token, tokens
):
    # a lease the hub made but never gave back (its release was lost): carol has no server
    r = as_the_hub(hub, "POST", "/requests", json={"user": "carol", "server": "", "count": 1})
    assert r.status_code == 201, r.text
    assert released_within_one_check(hub, admin_token, ("carol", "")) < 2 * CHECK_EVERY
    # alice's server runs, but on the CPU profile: not with this lease
    r = as_the_hub(hub, "POST", "/requests", json={"user": "alice", "server": "", "count": 1})
    assert r.status_code == 201, r.text
    assert released_within_one_check(hub, admin_token, ("alice", "")) < 2 * CHECK_EVERY
    stop_server(hub.url, tokens["alice"], "alice")
    # bob's GPU server runs with its lease through all these checks: it keeps it
    assert list(held(hub, admin_token)) == [("bob", "")]


def test_a_lease_whose_server_died_outside_the_hub_is_released_within_one_check(
    hub, admin_token, tokens
):
    """The server's process is killed: nobody stops it, so nobody gives its GPU back;
    once the hub has noticed (its poll), the next check releases the lease."""
    start_server(hub.url, tokens["carol"], "carol", {"profile": "gpu"})
    assert ("carol", "") in held(hub, admin_token)
    model = token_api(hub.url, admin_token, "GET", "/hub/api/users/carol").json()
    os.kill(model["servers"][""]["state"]["pid"], signal.SIGKILL)

    def gone():
        model = token_api(hub.url, admin_token, "GET", "/hub/api/users/carol").json()
        return "" not in model["servers"]

    wait_for(gone, 30, interval=0.2, what="the hub to notice carol's server is gone")
    assert released_within_one_check(hub, admin_token, ("carol", "")) < 2 * CHECK_EVERY
    assert list(held(hub, admin_token)) == [("bob", "")]


def test_a_spawn_waiting_for_a_gpu_keeps_its_place_then_its_lease(hub, admin_token, tokens):
    start_server(hub.url, tokens["carol"], "carol", {"profile": "gpu"})
    r = token_api(
        hub.url, tokens["dan"], "POST", "/hub/api/users/dan/server", json={"profile": "gpu"}
    )
    assert r.status_code == 202, r.text
    time.sleep(2 * CHECK_EVERY)  # two checks while dan waits
    (waiting,) = scheduler(hub, admin_token, "GET", "/admin/state").json()["waiting"]
    assert (waiting["user"], waiting["position"]) == ("dan", 1)

    stop_server(hub.url, tokens["carol"], "carol")
    wait_for(
        lambda: (
            token_api(hub.url, tokens["dan"], "GET", "/hub/api/users/dan")
            .json()["servers"]
            .get("", {})
            .get("ready")
        ),
        60,
        what="dan's server to start with carol's GPU",
    )
    dans = held(hub, admin_token)[("dan", "")]
    time.sleep(CHECK_EVERY + 1)  # a check after dan's server is up: the lease stays
    assert held(hub, admin_token)[("dan", "")]["id"] == dans["id"]
    for user in ("bob", "dan"):
        stop_server(hub.url, tokens[user], user)
    assert leases(hub, admin_token) == []
