"""The inventory changing under a running scheduler (GPU nodes joining and leaving), on the
injected clock: new devices are granted at once, leased devices that leave stay with their
lease until it ends and are never granted again."""

from __future__ import annotations

from gpu_scheduler.model import Device, Request
from gpu_scheduler.policy import Scheduler
from gpu_scheduler.report import capacity_view, wait_view
from gpu_scheduler.state import State


def node(name: str, n: int, model: str = "T4") -> list[Device]:
    return [Device(f"{name}/{model}/{i}", model, 16384, i, host=name) for i in range(n)]


def req(rid, user, count=1, at=0.0, **kw) -> Request:
    return Request(rid, user, rid, count, at, **kw)


def test_a_node_that_joins_is_granted_to_the_waiting_at_once():
    now = [100.0]
    state = State(Scheduler([], default_quota=2), None, clock=lambda: now[0])
    s = state.scheduler
    state.set_devices(node("n1", 1))
    s.submit(req("a", "ann"), 101.0)
    s.submit(req("b", "bob"), 102.0)
    assert list(s.queue) == ["b"]
    now[0] = 110.0
    step = state.set_devices(node("n1", 1) + node("n2", 2))
    assert [lease.id for lease in step.granted] == ["b"]
    assert s.leases["b"].granted_at == 110.0
    assert s.leases["b"].devices[0].startswith("n2/")
    assert s.capacity() == 3
    s.check()


def test_a_leased_device_that_leaves_stays_with_its_lease_and_is_never_granted():
    s = Scheduler(node("n1", 2), default_quota=2)
    s.submit(req("a", "ann"), 1.0)
    held = s.leases["a"].devices
    assert held == ("n1/T4/0",)
    s.submit(req("b", "bob", count=2), 1.5)
    assert list(s.queue) == ["b"]
    s.set_devices([], 2.0)  # the node left
    assert s.capacity() == 0 and s.free_devices() == []
    assert s.leases["a"].devices == held
    assert set(s.departed) == {"n1/T4/0"}
    assert capacity_view(s, "ann", [])["models"] == {}
    # the request waits: nothing to give, the departed device least of all
    assert list(s.queue) == ["b"]
    assert wait_view(s.queue["b"], s, 3.0)["eta_s"] == 86400
    s.check()
    step = s.release("a", 4.0)
    assert step.granted == [] and s.departed == {} and s.leased_devices() == set()
    # the node comes back: the waiting request gets a device at once
    step = s.set_devices(node("n1", 2), 5.0)
    assert [lease.id for lease in step.granted] == ["b"]
    s.check()


def test_a_leased_device_that_comes_back_is_an_inventory_device_again():
    s = Scheduler(node("n1", 2), default_quota=2)
    s.submit(req("a", "ann"), 1.0)
    s.set_devices(node("n1", 1, model="L4"), 2.0)  # relabelled, and one card left
    assert set(s.departed) == {"n1/T4/0"}
    assert s.device("n1/T4/0").model == "T4"
    s.set_devices(node("n1", 2), 3.0)
    assert s.departed == {}
    assert [d.uuid for d in s.free_devices()] == ["n1/T4/1"]
    s.check()


def test_a_borrowed_lease_with_a_departed_device_is_taken_back_for_quota():
    s = Scheduler(node("n1", 2), quotas={"staff": 2}, default_quota=0)
    s.submit(req("lend", "ann", count=2), 1.0)  # beyond quota: borrowed
    assert s.leases["lend"].borrowed
    s.set_devices(node("n1", 1), 2.0)  # one of its devices left
    assert set(s.departed) == {"n1/T4/1"}
    step = s.submit(req("own", "bob", groups=("staff",)), 3.0)
    assert [lease.id for lease in step.take_back] == ["lend"]
    step = s.release("lend", 4.0)
    assert [lease.devices for lease in step.granted] == [("n1/T4/0",)]
    assert s.departed == {}
    s.check()
