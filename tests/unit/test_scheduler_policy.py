"""The GPU scheduling policy: examples, then hypothesis state machines over random workloads."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gpu_scheduler.model import Device, Request
from gpu_scheduler.policy import RequestError, Scheduler


def devices(n: int, model: str = "A100", start: int = 0) -> list[Device]:
    return [Device(f"GPU-{model}-{i}", model, 40960, i) for i in range(start, start + n)]


def req(rid, user="u", count=1, at=0.0, **kw) -> Request:
    return Request(rid, user, kw.pop("server", rid), count, at, **kw)


# --- examples ---------------------------------------------------------------------------


def test_grants_when_free_then_queues_fifo():
    s = Scheduler(devices(2), default_quota=1)
    assert [g.id for g in s.submit(req("a", "alice"), 0).granted] == ["a"]
    assert [g.id for g in s.submit(req("b", "bob"), 1).granted] == ["b"]
    assert s.submit(req("c", "carol"), 2).granted == []
    assert s.position("c") == 1
    step = s.release("a", 3)
    assert [g.id for g in step.granted] == ["c"]
    assert s.leases["c"].devices == ("GPU-A100-0",)
    s.check()


def test_most_generous_group_quota_applies():
    s = Scheduler(devices(4), quotas={"students": 1, "staff": 3}, default_quota=0)
    assert s.quota(["students"]) == 1
    assert s.quota(["students", "staff"]) == 3
    assert s.quota([]) == 0
    assert s.quota(["unknown"]) == 0


def test_priority_before_arrival():
    s = Scheduler(devices(1), default_quota=1)
    s.submit(req("held", "x"), 0)
    s.submit(req("low", "a", priority=0), 1)
    s.submit(req("high", "b", priority=5), 2)
    assert [r.id for r in s.waiting()] == ["high", "low"]
    assert [g.id for g in s.release("held", 3).granted] == ["high"]


def test_borrowing_only_from_idle_capacity_and_reclaimed_first():
    s = Scheduler(devices(2), quotas={"lab": 1}, default_quota=0)
    # bob has no quota, but both GPUs are idle: he borrows one
    (lease,) = s.submit(req("bob1", "bob", groups=()), 0).granted
    assert lease.borrowed
    # alice (quota 1) gets the other one normally
    (alice,) = s.submit(req("alice1", "alice", groups=("lab",)), 1).granted
    assert not alice.borrowed
    # carol (quota 1) waits: bob's borrowed lease is taken back for her
    step = s.submit(req("carol1", "carol", groups=("lab",)), 2)
    assert step.granted == [] and [r.id for r in step.take_back] == ["bob1"]
    step = s.release("bob1", 3)
    assert [g.id for g in step.granted] == ["carol1"]
    s.check()


def test_no_borrowing_while_someone_within_quota_waits():
    s = Scheduler(devices(2, "A100") + devices(1, "T4"), quotas={"lab": 2}, default_quota=0)
    s.submit(req("a", "alice", count=2, model="A100", groups=("lab",)), 0)
    s.submit(req("b", "bea", count=1, model="A100", groups=("lab",)), 1)  # waits
    step = s.submit(req("x", "xavier", count=1, model="T4"), 2)  # beyond quota
    assert step.granted == []  # the T4 stays free: someone within quota waits


def test_large_request_is_not_starved():
    s = Scheduler(devices(2), default_quota=2)
    s.submit(req("a", "a"), 0)
    s.submit(req("big", "b", count=2), 1)  # waits for both
    s.submit(req("small", "c"), 2)  # would fit in the free GPU, but waits behind big
    assert set(s.queue) == {"big", "small"}
    assert [g.id for g in s.release("a", 3).granted] == ["big"]


def test_multi_gpu_lease_stays_on_one_model():
    s = Scheduler(devices(1, "A100") + devices(2, "T4"), default_quota=4)
    (lease,) = s.submit(req("a", count=2), 0).granted
    assert {s.devices[u].model for u in lease.devices} == {"T4"}


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"count": 0}, "count must be at least 1, got 0"),
        ({"count": -2}, "count must be at least 1, got -2"),
        ({"count": 1.5}, "count must be a whole number, got 1.5"),
        ({"count": True}, "count must be a whole number, got True"),
        ({"count": 3}, "asked for 3 GPUs, but there are 2 in all"),
        ({"model": "H100"}, "unknown GPU model 'H100'; this hub has: A100"),
    ],
)
def test_bad_requests_say_what_is_wrong(kw, message):
    s = Scheduler(devices(2), default_quota=1)
    with pytest.raises(RequestError) as info:
        s.submit(req("r", **kw), 0)
    assert str(info.value) == message
    assert s.queue == {} and s.leases == {}


def test_one_request_per_server():
    s = Scheduler(devices(2), default_quota=2)
    s.submit(req("a", server="s"), 0)
    with pytest.raises(RequestError, match="holds GPUs"):
        s.submit(req("b", server="s"), 1)


def test_idle_and_lifetime_reclaim():
    s = Scheduler(devices(2), default_quota=1)
    s.submit(req("idle", "a", idle_timeout=600), 0)
    s.submit(req("old", "b", idle_timeout=600, max_lifetime=3600), 0)
    s.touch("old", 3000)
    assert [(lease.id, why) for lease, why in s.due(601)] == [("idle", "idle")]
    s.touch("old", 3590)
    assert [(lease.id, why) for lease, why in s.due(3600)] == [
        ("idle", "idle"),
        ("old", "lifetime"),
    ]


def test_eta_from_idle_budgets():
    s = Scheduler(devices(1), default_quota=1)
    s.submit(req("a", "a", idle_timeout=900), 0)
    s.submit(req("b", "b", idle_timeout=900), 10)
    s.submit(req("c", "c", idle_timeout=900), 20)
    s.touch("a", 100)
    # a frees its GPU 900 s after its last activity at the earliest if idle from now
    assert s.eta("b", 100) == 900
    # c waits for a, then b's idle budget
    assert s.eta("c", 100) == 1800


# --- properties -------------------------------------------------------------------------

USERS = {"alice": ("lab",), "bob": ("lab", "staff"), "carol": (), "dan": ("staff",)}
MODELS = ["A100", "T4"]


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.s = Scheduler(
            devices(3, "A100") + devices(2, "T4"), quotas={"lab": 1, "staff": 2}, default_quota=0
        )
        self.now = 0.0
        self.n = 0
        self.stopped: list[str] = []

    def apply(self, step):
        """Carry out a step as the service would, and check the FIFO rule on it."""
        for granted in step.granted:
            if granted.borrowed:
                # borrowing only while nobody within quota waits
                assert not [r for r in self.s.waiting() if self.s.within_quota(r)], granted
                continue
            for waiting in self.s.waiting():
                if not self.s.within_quota(waiting):
                    continue
                earlier = (-waiting.priority, waiting.place, waiting.id) < (
                    -granted.request.priority,
                    granted.request.place,
                    granted.request.id,
                )
                models = {self.s.devices[u].model for u in granted.devices}
                could_use = waiting.model is None or waiting.model in models
                assert not (earlier and could_use), f"{granted.id} jumped ahead of {waiting.id}"
        for lease in step.take_back:
            assert lease.borrowed, "only borrowed leases are taken back for quota"

    @rule(
        user=st.sampled_from(sorted(USERS)),
        count=st.integers(1, 3),
        model=st.sampled_from([None, *MODELS]),
        priority=st.integers(0, 2),
    )
    def submit(self, user, count, model, priority):
        self.n += 1
        self.now += 1
        r = req(f"r{self.n}", user, count, self.now, model=model, priority=priority)
        r = Request(**{**r.__dict__, "groups": USERS[user], "idle_timeout": 60})
        try:
            step = self.s.submit(r, self.now)
        except RequestError:
            return
        self.apply(step)

    @precondition(lambda self: self.s.leases)
    @rule(data=st.data())
    def stop(self, data):
        self.now += 1
        lease_id = data.draw(st.sampled_from(sorted(self.s.leases)))
        self.stopped.append(lease_id)
        self.apply(self.s.release(lease_id, self.now))

    @precondition(lambda self: self.s.taking_back)
    @rule()
    def finish_reclaims(self):
        self.now += 1
        for lease_id in sorted(self.s.taking_back):
            self.apply(self.s.release(lease_id, self.now))

    @rule(seconds=st.integers(1, 120))
    def cull_idle(self, seconds):
        self.now += seconds
        for lease, _ in self.s.due(self.now):
            self.apply(self.s.release(lease.id, self.now))

    @precondition(lambda self: self.s.queue)
    @rule(data=st.data())
    def cancel(self, data):
        self.now += 1
        self.apply(self.s.cancel(data.draw(st.sampled_from(sorted(self.s.queue))), self.now))

    @precondition(lambda self: self.s.queue)
    @rule(data=st.data())
    def orphan(self, data):
        """The hub restarted: a waiting start is gone (its place kept for the grace)."""
        self.now += 1
        self.apply(self.s.orphan(data.draw(st.sampled_from(sorted(self.s.queue))), self.now))

    @precondition(lambda self: self.s.orphans)
    @rule(data=st.data())
    def ask_again(self, data):
        """The orphan's server asks again: within the grace it takes back its place."""
        self.now += 1
        self.n += 1
        orphan, since = self.s.orphans[data.draw(st.sampled_from(sorted(self.s.orphans)))]
        again = Request(**{**orphan.__dict__, "id": f"r{self.n}", "submitted_at": self.now})
        kept = self.now - since <= self.s.orphan_grace
        step = self.s.submit(again, self.now)
        assert (step.resumed is not None) == kept and (step.lost is not None) == (not kept)
        if kept and again.id in self.s.queue:
            assert self.s.queue[again.id].place == orphan.place
        self.apply(step)

    @rule(seconds=st.sampled_from([1, 600, 601]))
    def expire(self, seconds):
        self.now += seconds
        for request in self.s.expire_orphans(self.now):
            assert request.id not in self.s.queue and request.id not in self.s.leases

    @invariant()
    def orphans_hold_nothing(self):
        assert not set(self.s.orphans) & (set(self.s.leases) | set(self.s.queue))

    @invariant()
    def no_device_in_two_leases(self):
        self.s.check()

    @invariant()
    def quota_exceeded_only_by_borrowing(self):
        for user, groups in USERS.items():
            own = sum(
                len(lease.devices)
                for lease in self.s.leases.values()
                if lease.user == user and not lease.borrowed
            )
            assert own <= self.s.quota(groups)

    @invariant()
    def stopped_servers_hold_nothing(self):
        assert not set(self.stopped) & set(self.s.leases)

    @invariant()
    def borrowing_gives_way(self):
        # when a request within quota waits for devices that borrowed leases hold, enough
        # of those leases are already on their way back
        head = next((r for r in self.s.waiting() if self.s.within_quota(r)), None)
        if head is None:
            return
        free = len([d for d in self.s.free_devices() if head.model in (None, d.model)])
        back = sum(
            len(self.s._matching_ids(self.s.leases[i], head.model)) for i in self.s.taking_back
        )
        borrowed = sum(
            len(self.s._matching_ids(lease, head.model))
            for lease in self.s.leases.values()
            if lease.borrowed
        )
        if free + borrowed >= head.count and head.model is not None:
            assert free + back >= head.count


SchedulerMachine.TestCase.settings = settings(
    max_examples=500, stateful_step_count=40, deadline=None
)
test_scheduler_properties = SchedulerMachine.TestCase


def test_everything_released_after_all_servers_stop():
    s = Scheduler(devices(3), quotas={"lab": 2}, default_quota=1)
    for i, user in enumerate(["a", "b", "c", "d", "e"]):
        s.submit(req(f"r{i}", user, groups=("lab",)), i)
    while s.leases:
        s.release(next(iter(s.leases)), 10)
        for rid in list(s.taking_back):
            s.release(rid, 10)
    assert s.leases == {} and s.queue == {}
    assert len(s.free_devices()) == 3


def test_a_multi_gpu_lease_stays_on_one_host():
    nodes = [
        Device(f"{host}/T4/{i}", "T4", 16384, i, host=host) for host in ("a", "b") for i in (0, 1)
    ]
    s = Scheduler(nodes, default_quota=4)
    s.submit(req("one", "alice", 1, 0), 0)
    assert s.leases["one"].devices == ("a/T4/0",)
    s.submit(req("two", "bob", 2, 1), 1)
    assert s.leases["two"].devices == ("b/T4/0", "b/T4/1")
    # one GPU is free, on a; two on one host are not: carol waits
    s.submit(req("three", "carol", 2, 2), 2)
    assert "three" in s.queue and len(s.free_devices()) == 1
    s.release("one", 3)
    assert s.leases["three"].devices == ("a/T4/0", "a/T4/1")
    with pytest.raises(RequestError) as e:
        s.validate(req("four", "dora", 3, 4))
    assert str(e.value) == (
        "asked for 3 GPUs, but one server's GPUs are of one model on one machine, and the "
        "most there are together is 2 (4 in all)"
    )
