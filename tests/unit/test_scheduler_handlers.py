"""Every handler of the scheduler's JSON API (:mod:`gpu_scheduler.service`), over HTTP on
a loopback port, on the injected clock: no hub, no real waits.

The hub's own endpoints (``api/hub/...``) are checked as the hub calls them, with the
secret it shares. The user-token endpoints need the hub to say whose a token is: here a
test subclass of ``HubAuth`` (:class:`TokenTable`) replaces only that lookup
(``user_for_token``) with a table of the user models the hub's ``GET /hub/api/user``
answers; everything after it (the scope check of ``HubAuthenticated``, the handlers' own
admin check) is the real code. A real hub's tokens are checked in
tests/integration/test_gpu_scheduler_service.py.

Stopping a server goes through ``reconcile.stop_server`` (the hub's REST API); the tests
replace it with a recorder (pytest's monkeypatch) and assert which servers were stopped.
"""

from __future__ import annotations

import asyncio
import copy
import json

import pytest
from jupyterhub.services.auth import HubAuth
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from gpu_scheduler import reconcile
from gpu_scheduler.model import Device, Request
from gpu_scheduler.policy import Scheduler
from gpu_scheduler.service import HUB_ONLY_REQUESTS, State, make_app

PREFIX = "/services/gpu-scheduler/"
SECRET = "test-shared-secret"
ACCESS = "access:services!service=gpu-scheduler"
#: user models as the hub's ``GET /hub/api/user`` answers them, by token
TOKENS = {
    "alice-token": {"kind": "user", "name": "alice", "groups": ["ml"], "scopes": [ACCESS]},
    "bob-token": {"kind": "user", "name": "bob", "groups": [], "scopes": [ACCESS]},
    "admin-token": {
        "kind": "user",
        "name": "root",
        "groups": [],
        "scopes": [ACCESS, "admin:users"],
    },
    # a token of a user's server that was not granted access to the scheduler
    "no-access-token": {"kind": "user", "name": "eve", "groups": [], "scopes": ["self"]},
}


class TokenTable(HubAuth):
    """HubAuth whose token lookup reads :data:`TOKENS` instead of asking a hub (the only
    part replaced; see the module's docstring)."""

    def user_for_token(self, token, use_cache=True, session_id="", *, sync=True):
        model = copy.deepcopy(TOKENS.get(token))
        if sync:
            return model

        async def answer():
            return model

        return answer()


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Api:
    """The scheduler's API at ``base``: every answer as (status, JSON body or text)."""

    def __init__(self, base: str):
        self.base = base

    async def call(self, method, path, token=None, hub=False, body=None, raw=None):
        headers = {}
        if token:
            headers["Authorization"] = f"token {token}"
        if hub:
            headers["Authorization"] = f"dlhub-hub {SECRET}" if hub is True else hub
        if body is not None:
            raw = json.dumps(body)
        if raw is None and method in ("POST", "PUT"):
            raw = ""
        response = await AsyncHTTPClient().fetch(
            HTTPRequest(self.base + path, method=method, headers=headers, body=raw),
            raise_error=False,
        )
        text = response.body.decode()
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.code, json.loads(text)
        return response.code, text


@pytest.fixture
def stopped(monkeypatch):
    """The servers the scheduler stopped through the hub's API: [(user, server)]."""
    calls = []

    async def stop_server(api_url, token, user, server):
        calls.append((user, server))

    monkeypatch.setattr(reconcile, "stop_server", stop_server)
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "scheduler-token")
    monkeypatch.setenv("DLHUB_GPU_SHARED_SECRET", SECRET)
    return calls


def make_state(clock: Clock, gpus: int = 2, warn_before: int = 600, **quotas) -> State:
    devices = [Device(f"GPU-{i}", "A100", 40960, i) for i in range(gpus)]
    scheduler = Scheduler(devices, quotas=quotas or {"ml": 2}, default_quota=1)
    return State(scheduler, None, clock=clock, warn_before=warn_before)


def serve(state: State, scenario) -> None:
    """Run ``scenario(api)`` against the API of ``state`` on a loopback port."""

    async def main():
        sock, port = bind_unused_port()
        server = HTTPServer(make_app(state, PREFIX, TokenTable(access_scopes={ACCESS})))
        server.add_sockets([sock])
        try:
            await scenario(Api(f"http://127.0.0.1:{port}{PREFIX}"))
        finally:
            server.stop()
            await server.close_all_connections()

    asyncio.run(main())


def grant(state: State, rid: str, user: str, server: str = "", **kw) -> None:
    """A request as the hub submits it (``api/hub/requests`` does the same)."""
    request = Request(rid, user, server, kw.pop("count", 1), state.clock(), **kw)
    state.saved(state.scheduler.submit(request, state.clock()))


def hub_request(**kw) -> dict:
    return {"user": "alice", "groups": ["ml"], "server": "", "count": 1, **kw}


# --- the hub's endpoints (the shared secret) ---------------------------------------------


def test_hub_endpoints_refuse_anyone_without_the_secret(stopped):
    state = make_state(Clock())

    async def scenario(api):
        for auth in (None, "dlhub-hub wrong", "token alice-token", f"token {SECRET}"):
            for method, path, body in (
                ("POST", "api/hub/requests", hub_request()),
                ("GET", "api/hub/requests/x", None),
                ("GET", "api/hub/capacity?user=alice", None),
                ("DELETE", "api/hub/servers/alice/", None),
            ):
                code, answer = await api.call(method, path, hub=auth or "", body=body)
                assert (code, answer["message"]) == (403, "only the hub may use this endpoint")

    serve(state, scenario)
    assert state.scheduler.leases == {} and state.scheduler.queue == {}


def test_the_hub_asks_for_gpus_and_reads_the_answer(stopped):
    clock = Clock()
    state = make_state(clock, gpus=1)

    async def scenario(api):
        code, granted = await api.call("POST", "api/hub/requests", hub=True, body=hub_request())
        assert code == 201
        lease = granted["lease"]
        assert (lease["user"], lease["server"], lease["devices"][0]["uuid"]) == (
            "alice",
            "",
            "GPU-0",
        )
        body = hub_request(user="bob", groups=[], server="big", idle_timeout=60)
        code, waiting = await api.call("POST", "api/hub/requests", hub=True, body=body)
        assert code == 202
        assert waiting["waiting"]["position"] == 1
        # the waiting spawn asks again
        code, again = await api.call(
            "GET", f"api/hub/requests/{waiting['waiting']['id']}", hub=True
        )
        assert (code, again["waiting"]["user"]) == (200, "bob")
        code, answer = await api.call("GET", "api/hub/requests/nosuch", hub=True)
        assert (code, answer["message"]) == (404, "no request 'nosuch'")
        # alice's server stops: the hub gives her GPU back and bob gets it
        code, released = await api.call("DELETE", "api/hub/servers/alice/", hub=True)
        assert (code, released) == (200, {"released": lease["id"]})
        code, now_granted = await api.call(
            "GET", f"api/hub/requests/{waiting['waiting']['id']}", hub=True
        )
        assert now_granted["lease"]["server"] == "big"

    serve(state, scenario)
    assert stopped == []  # the hub stops its own servers; the scheduler only releases
    assert [x.request.idle_timeout for x in state.scheduler.leases.values()] == [60]


@pytest.mark.parametrize(
    "raw, message",
    [
        ("{not json", "the request body is not JSON"),
        ("[1, 2]", "the request body must be a JSON object"),
        ('"alice"', "the request body must be a JSON object"),
        (json.dumps(hub_request(user="")), "user must be a username"),
        (json.dumps(hub_request(user=["alice"])), "user must be a username"),
        (
            json.dumps(hub_request(priority=9)),
            "unknown field 'priority'; allowed: user, groups, server, count, model, "
            "idle_timeout, max_lifetime",
        ),
        (json.dumps(hub_request(server=3)), "server and model must be strings"),
        (json.dumps(hub_request(model=["A100"])), "server and model must be strings"),
        (json.dumps(hub_request(count="2")), "count must be a whole number, got '2'"),
        (json.dumps(hub_request(count=True)), "count must be a whole number, got True"),
        (json.dumps(hub_request(count=0)), "count must be at least 1, got 0"),
        (json.dumps(hub_request(count=3)), "asked for 3 GPUs, but there are 2 in all"),
        (
            json.dumps(hub_request(model="H100")),
            "unknown GPU model 'H100'; this hub has: A100",
        ),
    ],
    ids=lambda x: x[:30] if isinstance(x, str) else None,
)
def test_bad_requests_from_the_hub_are_4xx_json_and_change_nothing(stopped, raw, message):
    state = make_state(Clock())

    async def scenario(api):
        code, answer = await api.call("POST", "api/hub/requests", hub=True, raw=raw)
        assert (code, answer) == (400, {"status": 400, "message": message})

    serve(state, scenario)
    assert state.scheduler.leases == {} and state.scheduler.queue == {}


def test_a_huge_body_is_a_4xx_json_answer(stopped):
    state = make_state(Clock())
    huge_field = json.dumps(hub_request(**{"x" * 5_000_000: 1}))
    huge_name = json.dumps(hub_request(server="s" * 5_000_000, count="many"))

    async def scenario(api):
        code, answer = await api.call("POST", "api/hub/requests", hub=True, raw=huge_field)
        assert code == 400 and answer["message"].startswith("unknown field")
        code, answer = await api.call("POST", "api/hub/requests", hub=True, raw=huge_name)
        assert (code, answer["message"]) == (400, "count must be a whole number, got 'many'")
        code, answer = await api.call(
            "PUT", "api/admin/quotas", token="admin-token", raw="[" * 1_000_000
        )
        assert (code, answer["message"]) == (400, "the request body is not JSON")

    serve(state, scenario)
    assert state.scheduler.leases == {} and state.scheduler.queue == {}
    assert state.scheduler.quotas == {"ml": 2}


def test_the_same_server_cannot_ask_twice(stopped):
    state = make_state(Clock())

    async def scenario(api):
        assert (await api.call("POST", "api/hub/requests", hub=True, body=hub_request()))[0] == 201
        code, answer = await api.call("POST", "api/hub/requests", hub=True, body=hub_request())
        assert (code, answer["message"]) == (400, "server '' of alice holds GPUs")

    serve(state, scenario)
    assert len(state.scheduler.leases) == 1


def test_a_server_asking_again_after_a_hub_restart_is_told_it_kept_its_place(stopped):
    clock = Clock()
    state = make_state(clock, gpus=1)
    grant(state, "a1", "alice")
    grant(state, "b1", "bob")
    state.scheduler.orphan("b1", clock())  # the hub restarted: bob's start is gone

    async def scenario(api):
        code, answer = await api.call("GET", "api/admin/state", token="admin-token")
        (orphan,) = answer["orphaned"]
        assert (orphan["id"], orphan["user"], answer["waiting"]) == ("b1", "bob", [])
        assert orphan["expires_at"] == orphan["orphaned_at"] + 600
        body = hub_request(user="bob", groups=[], server="")
        code, again = await api.call("POST", "api/hub/requests", hub=True, body=body)
        assert code == 202 and (again["place"], again["orphan_grace_s"]) == ("kept", 600)
        assert again["waiting"]["position"] == 1
        assert again["waiting"]["queued_at"] == orphan["queued_at"]
        # a first ask is told nothing of the kind
        body = hub_request(user="carol", groups=[], server="")
        code, first = await api.call("POST", "api/hub/requests", hub=True, body=body)
        assert code == 202 and "place" not in first

    serve(state, scenario)


def test_hub_capacity_is_as_the_user_sees_it(stopped):
    state = make_state(Clock())
    grant(state, "a1", "alice", groups=("ml",))

    async def scenario(api):
        code, answer = await api.call("GET", "api/hub/capacity?user=alice&group=ml", hub=True)
        assert (code, answer) == (
            200,
            {"models": {"A100": {"total": 2, "free": 1}}, "quota": 2, "used": 1},
        )
        code, answer = await api.call("GET", "api/hub/capacity?user=bob", hub=True)
        assert (answer["quota"], answer["used"]) == (1, 0)
        code, answer = await api.call("GET", "api/hub/capacity", hub=True)
        assert code == 400  # which user: tornado's missing argument, as JSON
        assert "user" in answer["message"]

    serve(state, scenario)


def test_the_hub_releases_nothing_for_a_server_that_holds_nothing(stopped):
    state = make_state(Clock())

    async def scenario(api):
        code, answer = await api.call("DELETE", "api/hub/servers/alice/gpu", hub=True)
        assert (code, answer["message"]) == (
            404,
            "server 'gpu' of alice holds no GPUs and waits for none",
        )

    serve(state, scenario)


# --- the users' endpoints (a hub token) ----------------------------------------------------


def test_user_endpoints_need_a_token_with_access_to_the_scheduler(stopped):
    state = make_state(Clock())

    async def scenario(api):
        for token in (None, "not-a-token", "no-access-token"):
            for method, path in (
                ("GET", "api/capacity"),
                ("GET", "api/me"),
                ("POST", "api/requests"),
                ("DELETE", "api/requests/x"),
                ("GET", "api/admin/state"),
                ("POST", "api/admin/leases/x/reclaim"),
                ("PUT", "api/admin/quotas"),
                ("GET", "metrics"),
            ):
                code, answer = await api.call(method, path, token=token)
                assert (code, answer["message"]) == (403, "a valid hub token is required"), (
                    method,
                    path,
                    token,
                )

    serve(state, scenario)


def test_capacity_shows_the_callers_quota_and_use(stopped):
    state = make_state(Clock())
    grant(state, "a1", "alice", groups=("ml",))

    async def scenario(api):
        code, answer = await api.call("GET", "api/capacity", token="alice-token")
        assert (code, answer) == (
            200,
            {"models": {"A100": {"total": 2, "free": 1}}, "quota": 2, "used": 1},
        )
        code, answer = await api.call("GET", "api/capacity", token="bob-token")
        assert (answer["quota"], answer["used"]) == (1, 0)

    serve(state, scenario)


def test_me_shows_only_the_callers_leases_and_waits(stopped):
    clock = Clock()
    state = make_state(clock, gpus=1)
    grant(state, "a1", "alice", groups=("ml",))
    clock.now += 5
    grant(state, "b1", "bob", server="big")

    async def scenario(api):
        code, alice = await api.call("GET", "api/me", token="alice-token")
        assert code == 200 and alice["waiting"] == []
        assert [(x["id"], x["idle_s"]) for x in alice["leases"]] == [("a1", 5.0)]
        code, bob = await api.call("GET", "api/me", token="bob-token")
        assert bob["leases"] == []
        assert [(x["id"], x["server"], x["position"]) for x in bob["waiting"]] == [
            ("b1", "big", 1)
        ]

    serve(state, scenario)


def test_a_user_cannot_ask_the_scheduler_for_gpus(stopped):
    state = make_state(Clock())

    async def scenario(api):
        code, answer = await api.call(
            "POST", "api/requests", token="alice-token", body={"count": 1}
        )
        assert (code, answer["message"]) == (403, HUB_ONLY_REQUESTS)

    serve(state, scenario)
    assert state.scheduler.leases == {} and state.scheduler.queue == {}


def test_a_user_stops_waiting_to_start_without_gpus(stopped):
    state = make_state(Clock(), gpus=1)
    grant(state, "a1", "alice", groups=("ml",))
    grant(state, "b1", "bob", server="big")

    async def scenario(api):
        code, answer = await api.call("DELETE", "api/requests/big?then=later", token="bob-token")
        assert (code, answer["message"]) == (400, "then must be cancel or cpu")
        # alice cannot cancel bob's wait: only her own servers are hers
        code, answer = await api.call("DELETE", "api/requests/big", token="alice-token")
        assert code == 404
        code, answer = await api.call("DELETE", "api/requests/big?then=cpu", token="bob-token")
        assert (code, answer) == (200, {"cancelled": "b1", "then": "cpu"})
        # the waiting spawn reads the choice once
        code, answer = await api.call("GET", "api/hub/requests/b1", hub=True)
        assert (code, answer) == (200, {"withdrawn": "cpu"})
        code, answer = await api.call("GET", "api/hub/requests/b1", hub=True)
        assert code == 404

    serve(state, scenario)
    assert state.scheduler.queue == {} and list(state.scheduler.leases) == ["a1"]
    assert stopped == []


def test_a_user_giving_gpus_back_has_the_server_stopped_first(stopped):
    state = make_state(Clock(), gpus=1)
    grant(state, "a1", "alice", server="gpu", groups=("ml",))
    grant(state, "b1", "bob")

    async def scenario(api):
        code, answer = await api.call("DELETE", "api/requests/gpu", token="alice-token")
        assert (code, answer) == (200, {"released": "a1"})

    serve(state, scenario)
    assert stopped == [("alice", "gpu")]
    assert list(state.scheduler.leases) == ["b1"]  # handed on


# --- the admins' endpoints (a token with admin:users) ---------------------------------------


def test_admin_endpoints_refuse_a_users_token(stopped):
    state = make_state(Clock())
    grant(state, "a1", "alice", groups=("ml",))

    async def scenario(api):
        for method, path, body in (
            ("GET", "api/admin/state", None),
            ("POST", "api/admin/leases/a1/reclaim", None),
            ("PUT", "api/admin/quotas", {"ml": 9}),
            ("GET", "metrics", None),
        ):
            code, answer = await api.call(method, path, token="alice-token", body=body)
            assert (code, answer["message"]) == (403, "admin only: use an admin's API token")

    serve(state, scenario)
    assert list(state.scheduler.leases) == ["a1"] and state.scheduler.quotas == {"ml": 2}
    assert stopped == []


def test_admin_state_shows_every_lease_the_queue_and_quotas(stopped):
    clock = Clock()
    state = make_state(clock, gpus=1)
    grant(state, "a1", "alice", groups=("ml",))
    grant(state, "b1", "bob")
    state.unleased = [{"user": "carol", "server": ""}]

    async def scenario(api):
        code, answer = await api.call("GET", "api/admin/state", token="admin-token")
        assert code == 200
        assert [x["id"] for x in answer["leases"]] == ["a1"]
        assert [x["id"] for x in answer["waiting"]] == ["b1"]
        assert (answer["quotas"], answer["default_quota"]) == ({"ml": 2}, 1)
        assert answer["unleased_servers"] == [{"user": "carol", "server": ""}]

    serve(state, scenario)


def test_an_admin_reclaims_a_lease(stopped):
    state = make_state(Clock(), gpus=1)
    grant(state, "a1", "alice", groups=("ml",))
    grant(state, "b1", "bob")

    async def scenario(api):
        code, answer = await api.call("POST", "api/admin/leases/a1/reclaim", token="admin-token")
        assert (code, answer) == (200, {"reclaimed": "a1"})
        code, answer = await api.call("POST", "api/admin/leases/a1/reclaim", token="admin-token")
        assert (code, answer["message"]) == (404, "no lease 'a1'")

    serve(state, scenario)
    assert stopped == [("alice", "")]
    assert list(state.scheduler.leases) == ["b1"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"ml": -1}, "quota of 'ml' must be a whole number ≥ 0"),
        ({"ml": True}, "quota of 'ml' must be a whole number ≥ 0"),
        ({"ml": "2"}, "quota of 'ml' must be a whole number ≥ 0"),
        ({"ml": 1.5}, "quota of 'ml' must be a whole number ≥ 0"),
        ([1], "the request body must be a JSON object"),
    ],
)
def test_bad_quotas_are_refused_and_change_nothing(stopped, body, message):
    state = make_state(Clock())

    async def scenario(api):
        code, answer = await api.call("PUT", "api/admin/quotas", token="admin-token", body=body)
        assert (code, answer["message"]) == (400, message)

    serve(state, scenario)
    assert state.scheduler.quotas == {"ml": 2}


def test_a_new_quota_grants_what_now_fits(stopped):
    state = make_state(Clock(), gpus=2)
    grant(state, "b1", "bob", groups=("vision",), count=2)  # over the default quota of 1
    assert list(state.scheduler.queue) == ["b1"] or state.scheduler.leases["b1"].borrowed

    async def scenario(api):
        code, answer = await api.call(
            "PUT", "api/admin/quotas", token="admin-token", body={"vision": 2}
        )
        assert (code, answer) == (200, {"quotas": {"ml": 2, "vision": 2}})

    serve(state, scenario)
    assert not state.scheduler.queue and "b1" in state.scheduler.leases


def test_metrics_count_gpus_leased_idle_and_waiting(stopped):
    clock = Clock()
    state = make_state(clock, gpus=2)
    grant(state, "a1", "alice", groups=("ml",))
    grant(state, "b1", "bob")
    grant(state, "c1", "carol")  # waits
    clock.now += 300
    state.scheduler.touch("b1", clock.now)  # bob's server was busy just now

    async def scenario(api):
        code, text = await api.call("GET", "metrics", token="admin-token")
        assert code == 200
        lines = set(text.splitlines())
        assert 'dlhub_gpus_total{model="A100"} 2.0' in lines
        assert 'dlhub_gpus_leased{model="A100"} 2.0' in lines
        assert 'dlhub_gpus_leased_idle{model="A100"} 1.0' in lines  # alice's, 300 s idle
        assert "dlhub_gpu_queue_length 1.0" in lines
        assert "dlhub_gpu_wait_seconds_count 2.0" in lines  # two grants so far

    serve(state, scenario)


# --- the early warning, on the injected clock ------------------------------------------------


def test_a_lease_carries_a_warning_from_warn_before_its_reclaim(stopped):
    clock = Clock()
    state = make_state(clock, warn_before=300)
    grant(state, "a1", "alice", groups=("ml",), idle_timeout=1800, max_lifetime=7200)
    start = clock.now
    seen = []

    async def scenario(api):
        for later in (0, 1499, 1500, 1700):
            clock.now = start + later
            code, me = await api.call("GET", "api/me", token="alice-token")
            lease = me["leases"][0]
            seen.append((later, lease["reclaim_reason"], lease["warning"]))
            assert lease["reclaim_at"] == start + 1800
        # activity moves the idle reclaim back; the lifetime comes next
        state.scheduler.touch("a1", start + 7000)
        clock.now = start + 6899
        code, me = await api.call("GET", "api/me", token="alice-token")
        lease = me["leases"][0]
        assert (lease["reclaim_at"], lease["reclaim_reason"]) == (start + 7200, "lifetime")
        seen.append((6899, lease["reclaim_reason"], lease["warning"]))
        clock.now = start + 6900
        code, me = await api.call("GET", "api/me", token="alice-token")
        seen.append((6900, me["leases"][0]["reclaim_reason"], me["leases"][0]["warning"]))

    serve(state, scenario)
    assert seen == [
        (0, "idle", False),
        (1499, "idle", False),
        (1500, "idle", True),
        (1700, "idle", True),
        (6899, "lifetime", False),
        (6900, "lifetime", True),
    ]
