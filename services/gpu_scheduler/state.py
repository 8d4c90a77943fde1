"""The scheduler's running state, shared by the JSON API (:mod:`.service`) and the pages
(:mod:`.pages`): the policy, its store, the clock, what the checks last saw, the metrics.

Both import this module and :mod:`.report`; neither imports the other.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Histogram

from . import reconcile
from .policy import Scheduler
from .report import lease_view
from .store import Store

WAIT_BUCKETS = (1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, float("inf"))
LEASE_BUCKETS = (60, 600, 1800, 3600, 7200, 14400, 28800, 86400, float("inf"))
#: seconds a given-up place is remembered, to tell the user at their next ask
LOST_KEPT = 86400


class State:
    """Everything a running scheduler knows beyond the policy, in one object the handlers share.

    ``scheduler``: the pure policy (:class:`.policy.Scheduler`) holding leases and queue.
    ``store``: where every change is saved (None: nothing is saved, as in unit tests).
    ``clock``: the time as seconds since the epoch; tests pass their own to travel in time.
    ``warn_before``: seconds before a lease is reclaimed (idle timeout or maximum
    lifetime) from which it carries a warning (``gpus.warn_before``).

    Every change to the policy goes through :meth:`saved`, so it is stored and measured;
    a lease is shown through :meth:`show_lease`, with the utilisation and the warning.
    """

    def __init__(
        self, scheduler: Scheduler, store: Store | None, clock=time.time, warn_before=600
    ):
        self.scheduler = scheduler
        self.store = store
        self.clock = clock
        #: seconds before a reclaim from which the lease carries a warning
        self.warn_before = warn_before
        #: last known GPU utilisation (percent) by device UUID, with NVML
        self.utilisation: dict[str, int] = {}
        #: requests their users withdrew: id -> "cancel" or "cpu" (for the waiting spawn)
        self.withdrawn: dict[str, str] = {}
        #: places given up after the orphan grace: (user, server) -> when (for the next ask)
        self.lost: dict[tuple[str, str], float] = {}
        #: running servers of GPU profiles that hold no lease (found by the checks)
        self.unleased: list[dict] = []
        self.registry = CollectorRegistry()
        self.wait_seconds = Histogram(
            "dlhub_gpu_wait_seconds",
            "time from asking for GPUs to getting them",
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.lease_seconds = Histogram(
            "dlhub_gpu_lease_seconds",
            "how long GPUs were held",
            buckets=LEASE_BUCKETS,
            registry=self.registry,
        )

    def saved(self, step=None):
        """Record what a step granted, and store the new state."""
        for lease in step.granted if step is not None else ():
            self.wait_seconds.observe(max(0.0, lease.granted_at - lease.request.place))
        if self.store is not None:
            self.store.save(self.scheduler)
        return step

    def place_lost(self, request) -> None:
        """Remember that ``request``'s place was given up, to tell its user at the next ask
        (kept a day, in memory)."""
        now = self.clock()
        self.lost = {k: t for k, t in self.lost.items() if now - t < LOST_KEPT}
        self.lost[(request.user, request.server)] = now

    def submitted(self, request, step):
        """What the hub is told of how ``request`` entered the queue: ``"kept"`` (it took
        back its orphaned place), ``"lost"`` (its place was given up after the grace), or
        None (a first ask)."""
        key = (request.user, request.server)
        if step.resumed is not None:
            self.lost.pop(key, None)
            return "kept"
        if step.lost is not None or self.lost.pop(key, None) is not None:
            return "lost"
        return None

    def set_devices(self, devices):
        """The inventory changed (:meth:`.policy.Scheduler.set_devices` at this clock's
        now): waiting requests may be granted the new devices."""
        return self.saved(self.scheduler.set_devices(devices, self.clock()))

    def show_lease(self, lease, now: float) -> dict:
        """A lease as the API and the pages show it (:func:`.report.lease_view`): with the
        last known utilisation of its GPUs and the warning from ``warn_before``."""
        return lease_view(lease, self.scheduler, now, self.utilisation, self.warn_before)

    def withdraw(self, request_id: str, action: str) -> None:
        """The user stops waiting: to cancel the start, or to start without GPUs."""
        step = self.scheduler.cancel(request_id, self.clock())
        if step is not None:
            self.withdrawn[request_id] = action
            self.saved(step)

    async def reclaim(self, lease_id: str) -> bool:
        """Reclaim a lease (an admin's or the user's own choice): its server is stopped
        first (it must not keep using GPUs that go to someone else), then the GPUs are
        handed on. False: no such lease."""
        lease = self.scheduler.leases.get(lease_id)
        if lease is None:
            return False
        api_url = os.environ.get("JUPYTERHUB_API_URL")
        if api_url:
            token = os.environ["JUPYTERHUB_API_TOKEN"]
            await reconcile.stop_server(api_url, token, lease.user, lease.request.server)
        self.release(lease_id)
        return True

    def release(self, lease_id: str):
        """Give back a lease's GPUs (and hand them on), recording how long it was held."""
        lease = self.scheduler.leases.get(lease_id)
        now = self.clock()
        if lease is not None:
            self.lease_seconds.observe(max(0.0, now - lease.granted_at))
        return self.saved(self.scheduler.release(lease_id, now))
