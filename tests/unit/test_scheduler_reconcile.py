"""The scheduler's check against the hub: a lease whose server does not run with it is
released in one check; a spawn still pending keeps its fresh lease (injected clock)."""

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from gpu_scheduler import reconcile
from gpu_scheduler.model import Device, Request
from gpu_scheduler.policy import Scheduler
from gpu_scheduler.reconcile import UNKNOWN, check, server_entry, stale
from gpu_scheduler.service import State

LOG = logging.getLogger("test")


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_state(clock: Clock, gpus: int = 2) -> State:
    devices = [Device(f"GPU-{i}", "A100", 40960, i) for i in range(gpus)]
    return State(Scheduler(devices, default_quota=1), None, clock=clock)


def submit(state: State, rid: str, user: str, server: str = "") -> None:
    request = Request(rid, user, server, 1, state.clock(), groups=())
    state.saved(state.scheduler.submit(request, state.clock()))


def running(lease: str | None = None, pending=None, profile="gpu") -> dict:
    return server_entry(
        {
            "pending": pending,
            "last_activity": None,
            "user_options": {"profile": profile},
            "state": {"profile": {"name": profile}, **({"gpu_lease": lease} if lease else {})},
        }
    )


def run_check(state: State, servers: dict, clock: Clock, later: float = 0) -> None:
    """One check; the hub answers ``servers``, ``later`` seconds after being asked."""

    async def fetch(api_url, token):
        clock.now += later
        return servers

    asyncio.run(check(state, "http://hub.invalid/hub/api", "t", LOG, fetch=fetch))


def test_lease_of_a_server_that_is_gone_is_released_in_one_check():
    clock = Clock()
    state = make_state(clock)
    submit(state, "a1", "alice")
    clock.now += 1  # one check after the grant, not three intervals
    run_check(state, {}, clock)
    assert state.scheduler.leases == {}


def test_lease_of_a_cpu_server_or_a_restarted_one_is_released_in_one_check():
    clock = Clock()
    state = make_state(clock)
    submit(state, "a1", "alice")
    submit(state, "b1", "bob")
    clock.now += 1
    servers = {
        ("alice", ""): running(lease=None, profile="cpu"),  # runs without any lease
        ("bob", ""): running(lease="b0"),  # started again since: another lease
    }
    run_check(state, servers, clock)
    assert state.scheduler.leases == {}


def test_a_server_running_with_its_lease_keeps_it():
    clock = Clock()
    state = make_state(clock)
    submit(state, "a1", "alice")
    clock.now += 1
    run_check(state, {("alice", ""): running(lease="a1")}, clock)
    assert list(state.scheduler.leases) == ["a1"]


def test_a_pending_spawn_keeps_its_fresh_lease():
    clock = Clock()
    state = make_state(clock)
    submit(state, "a1", "alice")
    clock.now += 1
    # the spawn has its lease but has not finished starting: its state has no lease yet
    run_check(state, {("alice", ""): running(lease=None, pending="spawn")}, clock)
    assert list(state.scheduler.leases) == ["a1"]


def test_a_lease_granted_while_the_hub_was_asked_is_not_judged():
    clock = Clock()
    state = make_state(clock)
    asked = []

    async def fetch(api_url, token):
        asked.append(clock.now)
        clock.now += 1
        submit(state, "a1", "alice")  # a spawn is granted GPUs meanwhile
        return {}

    asyncio.run(check(state, "http://hub.invalid/hub/api", "t", LOG, fetch=fetch))
    assert list(state.scheduler.leases) == ["a1"]
    clock.now += 5
    run_check(state, {}, clock)  # the next check: its server never showed up
    assert state.scheduler.leases == {}


def test_a_waiting_request_whose_spawn_is_gone_is_orphaned_out_of_the_queue():
    clock = Clock()
    state = make_state(clock, gpus=1)
    submit(state, "a1", "alice")
    submit(state, "b1", "bob")  # waits
    submit(state, "c1", "carol")  # waits
    clock.now += 1
    servers = {
        ("alice", ""): running(lease="a1"),
        ("bob", ""): running(lease=None, pending="spawn"),  # still waiting
    }
    run_check(state, servers, clock)
    assert list(state.scheduler.queue) == ["b1"]
    assert list(state.scheduler.leases) == ["a1"]
    # carol's place is kept (gpus.orphan_grace) for her server asked again: see
    # tests/unit/test_scheduler_orphans.py
    assert list(state.scheduler.orphans) == ["c1"]


def test_without_the_server_state_only_gone_servers_are_released():
    clock = Clock()
    state = make_state(clock)
    submit(state, "a1", "alice")
    submit(state, "b1", "bob")
    clock.now += 1
    hidden = server_entry({"pending": None, "user_options": {}})
    assert hidden["lease"] is UNKNOWN
    # a server started before spawners kept their profile and lease: not judged either
    legacy = server_entry({"pending": None, "state": {"object_id": "c0ffee"}})
    assert legacy["lease"] is UNKNOWN
    leases, requests = stale(
        list(state.scheduler.leases.values()), [], {("alice", ""): hidden}, clock.now
    )
    assert [(x.id, why) for x, why in leases] == [("b1", "the server is not running")]
    assert requests == []


# --- reclaiming on the injected clock: idle, lifetime, borrowed, orphans ---------------------


def iso(t: float) -> str:
    """A time as the hub's API writes it."""
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


class Hub:
    """The hub as the check sees it: its users' server models, as ``GET /hub/api/users``
    answers them (``state`` with ``admin:server_state``), and the servers it was asked to
    stop (which then stop, as the hub's would)."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.users: dict[str, dict] = {}
        self.stopped: list[tuple[str, str]] = []

    def run(self, user, server="", lease=None, profile="gpu", active=None, pending=None):
        self.users.setdefault(user, {})[server] = {
            "pending": pending,
            "ready": pending is None,
            "last_activity": iso(self.clock() if active is None else active),
            "user_options": {"profile": profile},
            "state": {"profile": {"name": profile}, **({"gpu_lease": lease} if lease else {})},
        }

    async def fetch(self, api_url, token):
        # what reconcile.hub_servers makes of the hub's pages
        return {
            (user, name): server_entry(model)
            for user, servers in self.users.items()
            for name, model in servers.items()
        }

    async def stop_server(self, api_url, token, user, server):
        self.stopped.append((user, server))
        self.users.get(user, {}).pop(server, None)


@pytest.fixture
def hub(monkeypatch):
    """A :class:`Hub` on a clock of its own; the check stops servers through it."""
    h = Hub(Clock())
    monkeypatch.setattr(reconcile, "stop_server", h.stop_server)
    return h


def check_now(state: State, hub: Hub, **kw) -> None:
    asyncio.run(check(state, "http://hub.invalid/hub/api", "t", LOG, fetch=hub.fetch, **kw))


def spawn(state: State, hub: Hub, rid: str, user: str, server: str = "", **kw) -> None:
    """A GPU spawn as the hub makes it: the request, then the server runs with its lease
    (or stays pending while the request waits)."""
    groups = kw.pop("groups", ())
    request = Request(rid, user, server, kw.pop("count", 1), state.clock(), groups=groups, **kw)
    state.saved(state.scheduler.submit(request, state.clock()))
    if rid in state.scheduler.leases:
        hub.run(user, server, lease=rid)
    else:
        hub.run(user, server, pending="spawn")


def test_an_idle_server_is_stopped_after_its_idle_timeout_and_its_gpus_handed_on(hub):
    clock = hub.clock
    state = make_state(clock, gpus=1)
    spawn(state, hub, "a1", "alice", idle_timeout=600)
    spawn(state, hub, "b1", "bob")  # waits
    start = clock.now
    clock.now = start + 599
    check_now(state, hub)
    assert hub.stopped == [] and list(state.scheduler.leases) == ["a1"]
    clock.now = start + 600
    check_now(state, hub)
    assert hub.stopped == [("alice", "")]
    assert list(state.scheduler.leases) == ["b1"]  # bob's waiting spawn got the GPU
    held = {x.name: x.value for x in state.lease_seconds.collect()[0].samples}
    assert (held["dlhub_gpu_lease_seconds_count"], held["dlhub_gpu_lease_seconds_sum"]) == (1, 600)


def test_activity_the_hub_reports_moves_the_idle_reclaim(hub):
    clock = hub.clock
    state = make_state(clock)
    spawn(state, hub, "a1", "alice", idle_timeout=600)
    start = clock.now
    hub.run("alice", lease="a1", active=start + 500)  # a kernel ran at +500
    clock.now = start + 1099
    check_now(state, hub)
    assert hub.stopped == []
    assert state.scheduler.leases["a1"].last_active == start + 500
    clock.now = start + 1100
    check_now(state, hub)
    assert hub.stopped == [("alice", "")] and state.scheduler.leases == {}


def test_busy_gpus_count_as_activity_whatever_the_hub_says(hub):
    clock = hub.clock
    state = make_state(clock)
    spawn(state, hub, "a1", "alice", idle_timeout=600)
    spawn(state, hub, "b1", "bob", idle_timeout=600)
    busy = {"GPU-0": 55, "GPU-1": 3}  # alice trains from a closed tab; bob's GPU idles
    assert [x.devices for x in state.scheduler.leases.values()] == [("GPU-0",), ("GPU-1",)]
    clock.now += 600
    check_now(state, hub, utilisation=lambda uuids: {u: busy[u] for u in uuids})
    assert hub.stopped == [("bob", "")]
    assert list(state.scheduler.leases) == ["a1"]
    assert state.utilisation == busy  # shown on the admin page


def test_a_lease_ends_at_its_maximum_lifetime_however_busy(hub):
    clock = hub.clock
    state = make_state(clock)
    spawn(state, hub, "a1", "alice", max_lifetime=3600, idle_timeout=600)
    start = clock.now
    for later in range(300, 3600, 300):  # always active
        clock.now = start + later
        hub.run("alice", lease="a1", active=clock.now)
        check_now(state, hub)
    assert hub.stopped == []
    clock.now = start + 3600
    hub.run("alice", lease="a1", active=clock.now)
    check_now(state, hub)
    assert hub.stopped == [("alice", "")] and state.scheduler.leases == {}


def test_a_borrowed_lease_is_taken_back_for_someone_within_quota(hub):
    clock = hub.clock
    devices = [Device(f"GPU-{i}", "A100", 40960, i) for i in range(2)]
    state = State(Scheduler(devices, quotas={"lab": 1}, default_quota=0), None, clock=clock)
    spawn(state, hub, "bob1", "bob")  # no quota: borrows an idle GPU
    spawn(state, hub, "alice1", "alice", groups=("lab",))
    assert state.scheduler.leases["bob1"].borrowed
    clock.now += 1
    spawn(state, hub, "carol1", "carol", groups=("lab",))  # within quota: waits for bob's
    assert list(state.scheduler.queue) == ["carol1"]
    check_now(state, hub)
    assert hub.stopped == [("bob", "")]  # stopped before the GPU is handed on
    assert sorted(state.scheduler.leases) == ["alice1", "carol1"]
    assert not state.scheduler.leases["carol1"].borrowed


def test_an_orphan_lease_is_released_without_stopping_anything(hub):
    clock = hub.clock
    state = make_state(clock)
    spawn(state, hub, "a1", "alice")
    spawn(state, hub, "b1", "bob")
    hub.users["alice"].pop("")  # alice's server stopped without telling the scheduler
    hub.run("bob", lease=None, profile="cpu")  # bob's started again without GPUs
    clock.now += 1
    check_now(state, hub)
    assert state.scheduler.leases == {}
    assert hub.stopped == []  # gone or running without GPUs: nothing to stop


def test_a_server_still_starting_is_not_reclaimed_when_its_lease_is_due(hub):
    clock = hub.clock
    state = make_state(clock)
    spawn(state, hub, "a1", "alice", idle_timeout=60)
    hub.run("alice", lease=None, pending="spawn", active=clock.now)  # pulling its image
    clock.now += 600
    check_now(state, hub)
    assert hub.stopped == [] and list(state.scheduler.leases) == ["a1"]
    hub.run("alice", lease="a1", active=clock.now - 600)  # it runs, idle since its start
    check_now(state, hub)
    assert hub.stopped == [("alice", "")]


def test_gpu_servers_without_a_lease_are_reported(hub):
    clock = hub.clock
    state = make_state(clock)
    spawn(state, hub, "a1", "alice")
    hub.run("mallory", lease=None, profile="gpu")  # started around the scheduler
    hub.run("carol", lease=None, profile="cpu")
    hub.run("dave", lease=None, profile=None)  # the default profile, without GPUs here
    clock.now += 1
    check_now(state, hub, gpu_profiles={"gpu": 1, "cpu": 0, None: 0})
    assert state.unleased == [{"user": "mallory", "server": ""}]
    assert hub.stopped == []
