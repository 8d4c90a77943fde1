"""The scheduler's vocabulary: devices, requests, leases. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Device:
    """One schedulable GPU: a whole card, or one MIG instance of a card."""

    uuid: str
    model: str
    memory_mib: int = 0
    index: int = 0
    #: the card's UUID when this is a MIG instance
    parent: str | None = None
    #: the machine it is in (a Kubernetes node); one lease's devices share a machine
    host: str = ""


@dataclass(frozen=True)
class Request:
    """A server asking for ``count`` GPUs (of ``model``, or any model when None)."""

    id: str
    user: str
    server: str
    count: int
    submitted_at: float
    model: str | None = None
    groups: tuple[str, ...] = ()
    priority: int = 0
    #: seconds of GPU idleness after which the lease is reclaimed (0: never)
    idle_timeout: float = 0
    #: seconds after which the lease ends however busy it is (0: no limit)
    max_lifetime: float = 0
    #: when the place in the queue was first taken, when it is older than this ask (a
    #: server asking again after the hub restarted keeps its place; None: ``submitted_at``)
    queued_at: float | None = None

    @property
    def place(self) -> float:
        """The time the queue is ordered by: when the place was first taken."""
        return self.submitted_at if self.queued_at is None else self.queued_at


@dataclass
class Lease:
    """GPUs held by one server."""

    request: Request
    devices: tuple[str, ...]
    granted_at: float
    last_active: float
    #: granted beyond the user's quota, out of idle capacity: the first taken back
    borrowed: bool = False

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def user(self) -> str:
        return self.request.user

    def ends_by(self) -> float | None:
        """When this lease ends at the latest if nothing else happens (max lifetime)."""
        if self.request.max_lifetime:
            return self.granted_at + self.request.max_lifetime
        return None

    def reclaim_at(self) -> tuple[float, str] | None:
        """When, and why, this lease will be reclaimed if its server stays as it is now:
        after its idle timeout from the last activity, or at its maximum lifetime,
        whichever comes first; None when it has neither limit."""
        times = []
        if self.request.idle_timeout:
            times.append((self.last_active + self.request.idle_timeout, "idle"))
        limit = self.ends_by()
        if limit is not None:
            times.append((limit, "lifetime"))
        return min(times) if times else None

    def expected_end(self, now: float) -> float:
        """When its GPUs are expected back: if it goes idle now, after its idle budget,
        and never after its maximum lifetime. A lease with neither limit is expected to
        be held for another idle timeout's worth of a default hour."""
        idle = self.request.idle_timeout or 3600
        end = max(now, self.last_active) + idle
        limit = self.ends_by()
        return min(end, limit) if limit is not None else end


@dataclass
class Step:
    """What one scheduling pass decided; the shell carries it out: it starts the granted
    leases' servers and reclaims the leases to take back."""

    granted: list[Lease] = field(default_factory=list)
    #: borrowed leases to take back so that a request within its quota can run (the
    #: caller reclaims them: stops their servers and releases their GPUs)
    take_back: list[Lease] = field(default_factory=list)
    #: a submit that took back the place of an orphaned request (:meth:`.policy.Scheduler.orphan`)
    resumed: Request | None = None
    #: a submit that found its orphaned request past the grace: the place was given up
    lost: Request | None = None
