"""When a lease will be taken back, and from when its user is warned (pure)."""

from gpu_scheduler.model import Device, Lease, Request
from gpu_scheduler.policy import Scheduler
from gpu_scheduler.report import lease_view


def lease(idle_timeout=0, max_lifetime=0, granted=1000.0, active=1000.0):
    request = Request(
        "r1",
        "alice",
        "",
        1,
        submitted_at=granted,
        idle_timeout=idle_timeout,
        max_lifetime=max_lifetime,
    )
    return Lease(request, ("GPU-0",), granted_at=granted, last_active=active)


def test_reclaim_at_is_the_earlier_of_idle_timeout_and_lifetime():
    assert lease().reclaim_at() is None
    assert lease(idle_timeout=600).reclaim_at() == (1600.0, "idle")
    assert lease(max_lifetime=300).reclaim_at() == (1300.0, "lifetime")
    both = {"idle_timeout": 600, "max_lifetime": 3600}
    assert lease(**both, active=3500).reclaim_at() == (4100.0, "idle")
    assert lease(**both, active=4500).reclaim_at() == (4600.0, "lifetime")


def test_due_matches_reclaim_at():
    s = Scheduler([Device("GPU-0", "A100")])
    x = lease(idle_timeout=600)
    s.restore_lease(x)
    assert s.due(1599) == [] and s.due(1600) == [(x, "idle")]


def test_warning_starts_warn_before_the_reclaim():
    s = Scheduler([Device("GPU-0", "A100")])
    x = lease(idle_timeout=600)
    s.restore_lease(x)
    early = lease_view(x, s, 1000 + 600 - 301, warn_before=300)
    late = lease_view(x, s, 1000 + 600 - 300, warn_before=300)
    assert (early["warning"], late["warning"]) == (False, True)
    assert late["reclaim_at"] == 1600 and late["reclaim_reason"] == "idle"
    assert late["devices"] == [{"uuid": "GPU-0", "model": "A100", "index": 0, "utilisation": None}]
    assert lease_view(x, s, 1000, {"GPU-0": 87})["devices"][0]["utilisation"] == 87
    assert lease_view(lease(), s, 10**9, warn_before=10**9)["warning"] is False
