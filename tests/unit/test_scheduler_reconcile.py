"""The scheduler's check against the hub: a lease whose server does not run with it is
released in one check; a spawn still pending keeps its fresh lease (injected clock)."""

import asyncio
import logging

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


def test_a_waiting_request_whose_spawn_is_gone_is_dropped():
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
