"""A waiting request whose spawn died with the hub keeps its place for ``gpus.orphan_grace``.

JupyterHub keeps no start in progress across a restart: the scheduler's check finds the
request's server no longer waiting and orphans the request (out of the queue, never
granted). The same user's server asking again within the grace takes back the old place
(FIFO by the first ask, within priority); after it the place is given up, the log says so,
and the next ask is told. The policy runs on an injected clock; the store keeps orphans
across a scheduler restart.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from gpu_scheduler.model import Device, Request
from gpu_scheduler.policy import ORPHAN_GRACE, Scheduler
from gpu_scheduler.reconcile import check, server_entry
from gpu_scheduler.state import State
from gpu_scheduler.store import Store
from hub_config.gpu import waiting_message

LOG = logging.getLogger("test")


def devices(n=1):
    return [Device(f"GPU-{i}", "A100", 40960, i) for i in range(n)]


def req(rid, user, at, server="", **kw) -> Request:
    return Request(rid, user, server, 1, at, groups=(), **kw)


def busy(grace=ORPHAN_GRACE) -> Scheduler:
    """One GPU held by alice; bob, carol, dan waiting in that order."""
    s = Scheduler(devices(), default_quota=1, orphan_grace=grace)
    s.submit(req("a1", "alice", 0), 0)
    for i, user in enumerate(("bob", "carol", "dan"), start=1):
        s.submit(req(f"{user[0]}1", user, i), i)
    return s


def test_an_orphan_leaves_the_queue_and_takes_back_its_place_within_the_grace():
    s = busy(grace=600)
    assert [r.user for r in s.waiting()] == ["bob", "carol", "dan"]
    assert s.orphan("c1", 100).granted == []
    s.check()
    assert [r.user for r in s.waiting()] == ["bob", "dan"] and s.position("d1") == 2
    # carol's server asks again 10 min later (the hub restarted): her place is back
    step = s.submit(req("c2", "carol", 700), 700)
    assert step.resumed is not None and step.resumed.id == "c1" and step.lost is None
    assert [r.user for r in s.waiting()] == ["bob", "carol", "dan"]
    assert s.position("c2") == 2
    assert s.queue["c2"].place == 2 and s.queue["c2"].submitted_at == 700
    assert s.orphans == {}
    s.check()


def test_an_orphan_is_never_granted_and_the_queue_moves_on_meanwhile():
    s = busy()
    s.orphan("b1", 10)
    step = s.release("a1", 20)
    assert [x.id for x in step.granted] == ["c1"]  # carol, not the orphaned bob
    assert "b1" in s.orphans and "b1" not in s.leases
    s.check()
    # bob comes back: first in the queue again, ahead of dan who asked later
    assert s.submit(req("b2", "bob", 30), 30).resumed.id == "b1"
    assert [r.id for r in s.waiting()] == ["b2", "d1"]


def test_priority_is_kept_and_still_comes_first():
    s = Scheduler(devices(), default_quota=1)
    s.submit(req("a1", "alice", 0), 0)
    s.submit(req("b1", "bob", 1), 1)
    s.submit(req("v1", "vip", 2, priority=5), 2)
    s.orphan("v1", 3)
    s.submit(req("v2", "vip", 4), 4)  # asked again with the default priority
    assert [r.id for r in s.waiting()] == ["v2", "b1"] and s.queue["v2"].priority == 5


def test_after_the_grace_the_place_is_given_up():
    s = busy(grace=600)
    s.orphan("c1", 100)
    assert s.expire_orphans(700) == []  # exactly the grace: still kept
    (gone,) = s.expire_orphans(701)
    assert gone.id == "c1" and s.orphans == {}
    assert s.submit(req("c2", "carol", 800), 800).resumed is None
    assert [r.user for r in s.waiting()] == ["bob", "dan", "carol"]


def test_asking_again_too_late_before_any_check_is_told_lost():
    s = busy(grace=60)
    s.orphan("c1", 100)
    step = s.submit(req("c2", "carol", 500), 500)
    assert step.resumed is None and step.lost.id == "c1"
    assert s.position("c2") == 3 and s.orphans == {}


def test_asking_again_before_the_check_found_the_start_gone_keeps_the_place():
    """The hub asks once per start: the same server asking while its request still waits
    means the first start is gone (the hub restarted before the scheduler's check)."""
    s = busy()
    step = s.submit(req("c2", "carol", 50), 50)
    assert step.resumed.id == "c1" and s.orphans == {} and "c1" not in s.queue
    assert [r.id for r in s.waiting()] == ["b1", "c2", "d1"]
    s.check()


def test_another_server_of_the_same_user_does_not_take_the_place():
    s = busy()
    s.orphan("c1", 10)
    step = s.submit(req("c2", "carol", 20, server="other"), 20)
    assert step.resumed is None and "c1" in s.orphans
    assert s.position("c2") == 3


def test_orphans_survive_a_scheduler_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'gpu.sqlite'}"
    s = busy()
    s.orphan("c1", 100)
    Store(url).save(s)
    again = Scheduler(devices(), default_quota=1)
    Store(url).load(again)
    again.check()
    assert list(again.orphans) == ["c1"] and again.orphans["c1"][1] == 100
    assert [r.id for r in again.waiting()] == ["b1", "d1"]
    assert again.submit(req("c2", "carol", 200), 200).resumed.id == "c1"
    Store(url).save(again)
    third = Scheduler(devices(), default_quota=1)
    Store(url).load(third)
    # the kept place (queued_at) is stored too
    assert [r.id for r in third.waiting()] == ["b1", "c2", "d1"]
    assert third.queue["c2"].place == 2 and third.orphans == {}


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def pending():
    return server_entry(
        {
            "pending": "spawn",
            "last_activity": None,
            "user_options": {"profile": "gpu"},
            "state": {"profile": {"name": "gpu"}},
        }
    )


def run_check(state, servers):
    async def fetch(api_url, token):
        return servers

    asyncio.run(check(state, "http://hub.invalid/hub/api", "t", LOG, fetch=fetch))


def test_the_check_orphans_then_gives_up_and_the_next_ask_is_told(caplog):
    clock = Clock()
    s = Scheduler(devices(), default_quota=1, orphan_grace=600)
    state = State(s, None, clock=clock)
    for rid, user in (("a1", "alice"), ("b1", "bob"), ("c1", "carol")):
        state.saved(s.submit(req(rid, user, clock()), clock()))
        clock.now += 1
    running = server_entry(
        {
            "pending": None,
            "last_activity": None,
            "user_options": {"profile": "gpu"},
            "state": {"profile": {"name": "gpu"}, "gpu_lease": "a1"},
        }
    )
    # the hub restarted: no start in progress is left
    with caplog.at_level(logging.INFO, logger="test"):
        run_check(state, {("alice", ""): running})
    assert set(s.orphans) == {"b1", "c1"} and s.queue == {}
    assert "Keeping the place of bob/ in the GPU queue for 600 s" in caplog.text
    # bob starts again within the grace: kept
    clock.now += 60
    step = s.submit(req("b2", "bob", clock()), clock())
    assert state.submitted(s.queue["b2"], step) == "kept"
    # carol does not: the check gives her place up and says so
    clock.now += 600
    with caplog.at_level(logging.INFO, logger="test"):
        run_check(state, {("alice", ""): running, ("bob", ""): pending()})
    assert s.orphans == {} and list(s.queue) == ["b2"]
    assert "Gave up the place of carol/ in the GPU queue" in caplog.text
    # her next start queues at the back and is told her place was lost (once)
    request = req("c2", "carol", clock())
    assert state.submitted(request, s.submit(request, clock())) == "lost"
    assert s.position("c2") == 2
    assert state.submitted(request, s.cancel("c2", clock())) is None


@pytest.mark.parametrize(
    ("place", "expected"),
    [
        (None, "Waiting for a GPU: position 3, about 2 min"),
        (
            "kept",
            "Waiting for a GPU: you kept your place in the GPU queue (position 3), about 2 min",
        ),
        (
            "lost",
            "Waiting for a GPU: position 3, about 2 min (your earlier place in the queue was "
            "given up: the server was not started again within 10 min of the hub's restart)",
        ),
    ],
)
def test_the_progress_message_says_whether_the_place_was_kept(place, expected):
    assert waiting_message({"position": 3, "eta_s": 90}, place, 600) == expected
