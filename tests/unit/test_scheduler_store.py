"""The scheduler's state survives a restart: nothing lost, nothing doubled."""

import pytest

from gpu_scheduler.model import Device, Request
from gpu_scheduler.policy import Scheduler
from gpu_scheduler.store import Store


def devices():
    return [Device(f"GPU-{i}", "A100", 40960, i) for i in range(3)]


def busy_scheduler() -> Scheduler:
    s = Scheduler(devices(), quotas={"lab": 1}, default_quota=0)
    s.submit(Request("b1", "bob", "", 1, 0.0, idle_timeout=600), 0)  # borrowed
    s.submit(Request("a1", "alice", "", 1, 1.0, groups=("lab",)), 1)
    s.submit(Request("b2", "bob", "two", 1, 2.0), 2)  # borrowed
    s.submit(Request("c1", "carol", "", 1, 3.0, groups=("lab",), priority=2), 3)  # waits
    s.submit(Request("d1", "dan", "", 2, 4.0, model="A100"), 4)  # waits
    s.touch("a1", 50)
    return s


def state(s: Scheduler):
    leases = {
        i: (x.request, x.devices, x.granted_at, x.last_active, x.borrowed)
        for i, x in s.leases.items()
    }
    return leases, dict(s.queue), set(s.taking_back), dict(s.quotas)


def test_round_trip_through_sqlite(tmp_path):
    s = busy_scheduler()
    assert s.taking_back == {"b2"}  # carol's quota takes back bob's newest borrowed GPU
    store = Store(f"sqlite:///{tmp_path / 'scheduler.sqlite'}")
    store.save(s)
    for _ in range(2):  # loading twice into fresh schedulers gives the same, not double
        restarted = Scheduler(devices(), default_quota=0)
        Store(f"sqlite:///{tmp_path / 'scheduler.sqlite'}").load(restarted)
        restarted.check()
        assert state(restarted) == state(s)
        assert restarted.position("c1") == 1
        assert restarted.held_by("bob") == 2


def test_saving_again_replaces_the_state(tmp_path):
    s = busy_scheduler()
    store = Store(f"sqlite:///{tmp_path / 'scheduler.sqlite'}")
    store.save(s)
    s.release("b2", 10)  # carol gets it
    store.save(s)
    restarted = Scheduler(devices(), default_quota=0)
    store.load(restarted)
    assert set(restarted.leases) == {"b1", "a1", "c1"}
    assert set(restarted.queue) == {"d1"}
    assert restarted.taking_back == set()


def test_a_lease_on_a_device_that_is_gone_is_refused(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'scheduler.sqlite'}")
    store.save(busy_scheduler())
    smaller = Scheduler(devices()[:1], default_quota=0)
    with pytest.raises(ValueError, match="which the inventory lacks"):
        store.load(smaller)


def test_a_new_sqlite_file_is_private_from_creation(tmp_path):
    import os
    import stat

    path = tmp_path / "gpu-scheduler.sqlite"
    old = os.umask(0o022)  # what a service usually runs with: files 0644
    try:
        store = Store(f"sqlite:///{path}")
        store.save(busy_scheduler())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # an existing file that others could read is made private too
    path.chmod(0o644)
    Store(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
