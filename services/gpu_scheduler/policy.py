"""The GPU scheduling policy: pure, no I/O, time passed in by the caller.

Rules, in the order :meth:`Scheduler.schedule` applies them:

1. **Quotas.** A user's quota is the most generous quota of their groups (a group without
   one has ``default_quota``). A request that keeps the user within it is *within quota*.
2. **FIFO within priority.** Waiting requests are taken by priority (higher first), then
   by arrival. A request that cannot be granted blocks later ones that would take the
   same devices, so a large request is not starved by a stream of small ones.
3. **Room for quota.** When a request within quota waits for devices that borrowed
   leases hold, those leases (newest first) are taken back (:attr:`Step.take_back`,
   :attr:`Scheduler.taking_back`): the caller reclaims them (stops their servers and
   releases them), and the request gets the devices.
4. **Borrowing.** Only when no request within quota waits, requests beyond quota may use
   idle capacity; such leases are *borrowed* and are the first taken back.

A device is never in two leases; :meth:`Scheduler.check` asserts the invariants.

**Orphans.** A waiting request whose spawn is gone (the hub was restarted: JupyterHub keeps
no start in progress) is not dropped but *orphaned* (:meth:`Scheduler.orphan`): it leaves
the queue (it is never granted, no GPU waits for nobody) and keeps its place for
``orphan_grace`` seconds. When the same user's server asks again within that time, the new
request takes the old place (:attr:`Step.resumed`: ordered by the first ask's time, with
its priority); after it the place is given up (:meth:`Scheduler.expire_orphans`, or
:attr:`Step.lost` when the server asks again too late).

The inventory may change while leases run (:meth:`Scheduler.set_devices`: a GPU node joins
or leaves the cluster). A device that leaves while a lease holds it stays in that lease
(:attr:`Scheduler.departed`) until the lease is released, and is never granted again
unless it comes back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from .model import Device, Lease, Request, Step

#: expected hold of a lease with no idle timeout, for ETAs only
DEFAULT_HOLD = 3600.0
#: seconds an orphaned request keeps its place (``gpus.orphan_grace``)
ORPHAN_GRACE = 600.0


class RequestError(ValueError):
    """A request that can never be granted or is malformed; the message says why."""


class Scheduler:
    """The GPUs, their leases and the queue, and the rules above; no I/O, no clock.

    Every change (:meth:`submit`, :meth:`cancel`, :meth:`release`, :meth:`schedule`)
    takes the time as ``now`` and returns a :class:`~.model.Step`: the leases granted and
    the borrowed leases to take back, which the caller (the service) carries out.
    ``devices``: the inventory; ``quotas``: GPUs per group; ``default_quota``: the
    quota of a group not in ``quotas`` and of a user in no group; ``orphan_grace``:
    seconds an orphaned request keeps its place (see "Orphans" above).
    """

    def __init__(
        self,
        devices: Iterable[Device],
        quotas: dict[str, int] | None = None,
        default_quota: int = 0,
        orphan_grace: float = ORPHAN_GRACE,
    ):
        self.devices: dict[str, Device] = _by_uuid(devices)
        #: devices gone from the inventory that a lease still holds, until it is released
        self.departed: dict[str, Device] = {}
        self.quotas: dict[str, int] = dict(quotas or {})
        self.default_quota = default_quota
        self.leases: dict[str, Lease] = {}
        self.queue: dict[str, Request] = {}
        self.orphan_grace = orphan_grace
        #: requests whose spawn is gone, keeping their place: id -> (request, orphaned at)
        self.orphans: dict[str, tuple[Request, float]] = {}
        #: borrowed leases the policy takes back for a request within quota, until
        #: the caller has reclaimed (released) them
        self.taking_back: set[str] = set()
        self._held: dict[str, int] = {}
        self._free: dict[str, list[str]] = {}
        #: every device in one machine (declared, NVML): no need to keep leases on one host
        self._one_host = len({d.host for d in self.devices.values()}) <= 1

    # --- queries ---------------------------------------------------------------------

    def device(self, uuid: str) -> Device:
        """The device ``uuid`` of the inventory, or departed from it but still leased."""
        return self.devices[uuid] if uuid in self.devices else self.departed[uuid]

    def quota(self, groups: Iterable[str]) -> int:
        """The most generous quota among ``groups`` (``default_quota`` for none)."""
        return max(
            (self.quotas.get(g, self.default_quota) for g in groups), default=self.default_quota
        )

    def held_by(self, user: str) -> int:
        """GPUs ``user``'s leases hold."""
        return self._held.get(user, 0)

    def leased_devices(self) -> set[str]:
        """UUIDs of the devices in a lease."""
        return {uuid for lease in self.leases.values() for uuid in lease.devices}

    def free_devices(self) -> list[Device]:
        """Devices in no lease, by model, index and UUID."""
        leased = self.leased_devices()
        return sorted(
            (d for d in self.devices.values() if d.uuid not in leased),
            key=lambda d: (d.model, d.index, d.uuid),
        )

    def waiting(self) -> list[Request]:
        """The queue in the order it is served: priority, then arrival."""
        return sorted(self.queue.values(), key=lambda r: (-r.priority, r.place, r.id))

    def position(self, request_id: str) -> int:
        """1-based place of a waiting request in the queue."""
        for i, request in enumerate(self.waiting(), start=1):
            if request.id == request_id:
                return i
        raise KeyError(request_id)

    def within_quota(self, request: Request) -> bool:
        """Would granting ``request`` keep its user within their quota?"""
        return self.held_by(request.user) + request.count <= self.quota(request.groups)

    def capacity(self, model: str | None = None) -> int:
        """How many devices there are of ``model`` (None: of every model)."""
        return sum(1 for d in self.devices.values() if model in (None, d.model))

    def largest_group(self, model: str | None = None) -> int:
        """The most GPUs one lease can get: of one model (``model``, or any) on one host."""
        groups = Counter(
            (d.host, d.model) for d in self.devices.values() if model in (None, d.model)
        )
        return max(groups.values(), default=0)

    # --- changes ---------------------------------------------------------------------

    def validate(self, request: Request) -> None:
        """Refuse a request that is malformed or can never be granted."""
        if not isinstance(request.count, int) or isinstance(request.count, bool):
            raise RequestError(f"count must be a whole number, got {request.count!r}")
        if request.count < 1:
            raise RequestError(f"count must be at least 1, got {request.count}")
        models = sorted({d.model for d in self.devices.values()})
        if request.model is not None and request.model not in models:
            known = ", ".join(models) or "none"
            raise RequestError(f"unknown GPU model {request.model!r}; this hub has: {known}")
        most, total = self.largest_group(request.model), self.capacity(request.model)
        if request.count > most:
            what = f"{request.model} GPUs" if request.model else "GPUs"
            if most == total:
                raise RequestError(
                    f"asked for {request.count} {what}, but there are {most} in all"
                )
            raise RequestError(
                f"asked for {request.count} {what}, but one server's GPUs are of one model on "
                f"one machine, and the most there are together is {most} ({total} in all)"
            )
        for lease in self.leases.values():
            if (lease.user, lease.request.server) == (request.user, request.server):
                raise RequestError(f"server {request.server!r} of {request.user} holds GPUs")
        for waiting in self.queue.values():
            if (waiting.user, waiting.server) == (request.user, request.server):
                raise RequestError(f"server {request.server!r} of {request.user} already waits")
        if request.id in self.queue or request.id in self.leases or request.id in self.orphans:
            raise RequestError(f"request id {request.id!r} is in use")

    def submit(self, request: Request, now: float) -> Step:
        """Queue a request and run a scheduling pass (it may be granted at once).

        When the same user's server has an orphaned request, the new one takes its place
        if the grace is not over (:attr:`Step.resumed`); else the place is given up
        (:attr:`Step.lost`) and the request queues at the back. A request of the same
        server still waiting is taken as orphaned now: only the hub asks, once per start,
        so that start is gone (the hub restarted before the check found out)."""
        for waiting in list(self.queue.values()):
            if (waiting.user, waiting.server) == (request.user, request.server):
                self.orphans[waiting.id] = (self.queue.pop(waiting.id), now)
        self.validate(request)
        resumed = lost = None
        for orphan_id, (orphan, since) in list(self.orphans.items()):
            if (orphan.user, orphan.server) != (request.user, request.server):
                continue
            del self.orphans[orphan_id]
            if now - since <= self.orphan_grace:
                resumed = orphan
                request = replace(request, queued_at=orphan.place, priority=orphan.priority)
            else:
                lost = orphan
        self.queue[request.id] = request
        step = self.schedule(now)
        step.resumed, step.lost = resumed, lost
        return step

    def orphan(self, request_id: str, now: float) -> Step | None:
        """A waiting request's spawn is gone: keep its place for ``orphan_grace`` seconds
        out of the queue (never granted meanwhile) and run a scheduling pass; None if it
        was not waiting."""
        request = self.queue.pop(request_id, None)
        if request is None:
            return None
        self.orphans[request_id] = (request, now)
        return self.schedule(now)

    def expire_orphans(self, now: float) -> list[Request]:
        """Give up the places of orphans past their grace; return their requests."""
        over = [i for i, (_, since) in self.orphans.items() if now - since > self.orphan_grace]
        return [self.orphans.pop(i)[0] for i in over]

    def cancel(self, request_id: str, now: float) -> Step | None:
        """Drop a waiting request and run a scheduling pass (the requests behind it may
        now be granted, or have borrowed GPUs taken back for them); None if it was not
        waiting."""
        if self.queue.pop(request_id, None) is None:
            return None
        return self.schedule(now)

    def release(self, lease_id: str, now: float) -> Step:
        """A server stopped: free its GPUs and hand them on (those departed from the
        inventory are forgotten)."""
        lease = self.leases.pop(lease_id, None)
        if lease is not None:
            self._held[lease.user] -= len(lease.devices)
            for uuid in lease.devices:
                self.departed.pop(uuid, None)
        self.taking_back.discard(lease_id)
        return self.schedule(now)

    def set_devices(self, devices: Iterable[Device], now: float) -> Step:
        """The inventory changed (a GPU node joined or left): take ``devices`` as the whole
        of it and run a scheduling pass, which may grant new devices to waiting requests.

        A leased device that is no longer listed stays with its lease (in
        :attr:`departed`, counted nowhere as capacity) until the lease is released; one
        that comes back is an inventory device again. Waiting requests stay queued even if
        no device of their kind is left (a node may be back soon)."""
        new = _by_uuid(devices)
        leased = self.leased_devices()
        self.departed = {uuid: self.device(uuid) for uuid in leased if uuid not in new}
        self.devices = new
        self._one_host = len({d.host for d in self.devices.values()}) <= 1
        return self.schedule(now)

    def restore_lease(self, lease: Lease, taking_back: bool = False) -> None:
        """Put back a lease read from storage (after a restart), checking it still fits;
        ``taking_back``: it was being taken back (see :attr:`taking_back`)."""
        leased = self.leased_devices()
        for uuid in lease.devices:
            if uuid not in self.devices:
                raise ValueError(f"lease {lease.id} holds {uuid}, which the inventory lacks")
            if uuid in leased:
                raise ValueError(f"lease {lease.id} holds {uuid}, which another lease holds")
        self.leases[lease.id] = lease
        self._held[lease.user] = self._held.get(lease.user, 0) + len(lease.devices)
        if taking_back:
            self.taking_back.add(lease.id)

    def touch(self, lease_id: str, now: float) -> None:
        """The lease's GPUs or kernels were busy at ``now``."""
        lease = self.leases.get(lease_id)
        if lease is not None and now > lease.last_active:
            lease.last_active = now

    def due(self, now: float) -> list[tuple[Lease, str]]:
        """Leases past their maximum lifetime ("lifetime") or idle budget ("idle")."""
        due = ((lease, lease.reclaim_at()) for lease in self.leases.values())
        return [(lease, at[1]) for lease, at in due if at is not None and now >= at[0]]

    def schedule(self, now: float) -> Step:
        """Grant what can be granted; take borrowed leases back for quota holders."""
        step = Step()
        self._free = self._free_by_model()
        # models that earlier waiting requests need (None: every model)
        blocked: set[str | None] = set()
        quota_waiting = False
        for request in self.waiting():
            if None in blocked:
                quota_waiting = quota_waiting or self.within_quota(request)
                break  # an earlier request may take any device: everyone after waits
            if not self.within_quota(request):
                continue
            devices = self._pick(request, blocked)
            if devices:
                step.granted.append(self._grant(request, devices, now, borrowed=False))
                continue
            quota_waiting = True
            if not _blocked(request.model, blocked):
                step.take_back.extend(self._make_room(request))
            blocked.add(request.model)
        if not quota_waiting:
            for request in self.waiting():
                if None in blocked:
                    break
                if self.within_quota(request):
                    continue  # waits for devices (handled above)
                devices = self._pick(request, blocked)
                if devices:
                    step.granted.append(self._grant(request, devices, now, borrowed=True))
                else:
                    blocked.add(request.model)
        return step

    # --- helpers ---------------------------------------------------------------------

    def _matching(self, devices: Iterable[Device], model: str | None) -> list[Device]:
        return [d for d in devices if model in (None, d.model)]

    def _free_by_model(self) -> dict[str, list[str]]:
        """Free device UUIDs per model, in a stable order."""
        pools: dict[str, list[str]] = {model: [] for model in self._models()}
        for device in self.free_devices():
            pools[device.model].append(device.uuid)
        return pools

    def _models(self) -> list[str]:
        return sorted({d.model for d in self.devices.values()})

    def _pick(self, request: Request, blocked: set[str | None]) -> tuple[str, ...]:
        """Free devices for ``request``, leaving alone the models earlier requests wait for.

        A request for any model gets devices of one model on one host (a multi-GPU server
        stays on one kind of card, in one machine).
        """
        if _blocked(request.model, blocked):
            return ()
        models = [request.model] if request.model is not None else list(self._free)
        for model in models:
            if model in blocked:
                continue
            if self._one_host:
                pool = self._free.get(model, [])
                if len(pool) >= request.count:
                    return tuple(pool[: request.count])
                continue
            by_host: dict[str, list[str]] = {}
            for uuid in self._free.get(model, []):
                by_host.setdefault(self.devices[uuid].host, []).append(uuid)
            for pool in by_host.values():
                if len(pool) >= request.count:
                    return tuple(pool[: request.count])
        return ()

    def _grant(self, request: Request, devices, now: float, borrowed: bool) -> Lease:
        del self.queue[request.id]
        lease = Lease(request, tuple(devices), granted_at=now, last_active=now, borrowed=borrowed)
        self.leases[request.id] = lease
        self._held[request.user] = self._held.get(request.user, 0) + len(devices)
        for uuid in devices:
            self._free[self.devices[uuid].model].remove(uuid)
        return lease

    def _make_room(self, request: Request) -> list[Lease]:
        """Borrowed leases (newest first) whose devices would let ``request`` run."""
        free = len(self._matching(self.free_devices(), request.model))
        pending = [
            self.leases[i] for i in self.taking_back if i in self.leases
        ]  # already on their way back
        free += sum(len(self._matching_ids(lease, request.model)) for lease in pending)
        if free >= request.count:
            return []
        candidates = sorted(
            (
                lease
                for lease in self.leases.values()
                if lease.borrowed
                and lease.id not in self.taking_back
                and self._matching_ids(lease, request.model)
            ),
            key=lambda lease: lease.granted_at,
            reverse=True,
        )
        chosen = []
        for lease in candidates:
            if free >= request.count:
                break
            chosen.append(lease)
            free += len(self._matching_ids(lease, request.model))
        if free < request.count:
            return []  # not enough even with every borrowed lease back: just wait
        self.taking_back.update(lease.id for lease in chosen)
        return chosen

    def _matching_ids(self, lease: Lease, model: str | None) -> list[str]:
        return [u for u in lease.devices if model in (None, self.device(u).model)]

    # --- estimates -------------------------------------------------------------------

    def eta(self, request_id: str, now: float) -> float:
        """Seconds until a waiting request is expected to get its GPUs (infinite while the
        inventory has too few of them).

        Every lease is expected to end when its idle budget runs out if it goes idle now
        (at the latest at its maximum lifetime); a lease being taken back ends now. The
        queue ahead is played forward in order, each request holding its GPUs for its
        idle timeout (or lifetime when shorter). Quotas are not modelled.
        """
        free_at = {uuid: now for uuid in self.devices}
        for lease in self.leases.values():
            end = now if lease.id in self.taking_back else lease.expected_end(now)
            for uuid in lease.devices:
                free_at[uuid] = end
        for request in self.waiting():
            candidates = sorted(
                (uuid for uuid in free_at if request.model in (None, self.device(uuid).model)),
                key=lambda u: free_at[u],
            )[: request.count]
            if len(candidates) < request.count:  # its GPUs left the inventory: none soon
                if request.id == request_id:
                    return math.inf
                continue
            start = max(free_at[u] for u in candidates)
            if request.id == request_id:
                return max(0.0, start - now)
            hold = request.idle_timeout or DEFAULT_HOLD
            if request.max_lifetime:
                hold = min(hold, request.max_lifetime)
            for uuid in candidates:
                free_at[uuid] = start + hold
        raise KeyError(request_id)

    # --- invariants ------------------------------------------------------------------

    def check(self) -> None:
        """Assert the invariants (used by the property tests)."""
        seen: set[str] = set()
        for lease in self.leases.values():
            assert len(lease.devices) == lease.request.count, lease
            for uuid in lease.devices:
                assert uuid in self.devices or uuid in self.departed, uuid
                assert uuid not in seen, f"device {uuid} in two leases"
                seen.add(uuid)
        assert not set(self.leases) & set(self.queue), "a request both waits and holds"
        assert not set(self.orphans) & (set(self.leases) | set(self.queue)), "orphan in use"
        assert self.taking_back <= set(self.leases), "taking back a lease that is gone"
        for user in {lease.user for lease in self.leases.values()} | set(self._held):
            held = sum(len(x.devices) for x in self.leases.values() if x.user == user)
            assert self._held.get(user, 0) == held, f"holdings of {user} out of step"


def _blocked(model: str | None, blocked: set[str | None]) -> bool:
    """Is every device a request for ``model`` could take wanted by an earlier request?"""
    return None in blocked or (model is not None and model in blocked)


def _by_uuid(devices: Iterable[Device]) -> dict[str, Device]:
    out: dict[str, Device] = {}
    for device in devices:
        if device.uuid in out:
            raise ValueError(f"device {device.uuid} is listed twice")
        out[device.uuid] = device
    return out
