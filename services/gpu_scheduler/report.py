"""What the API and the pages show of the scheduler's state: views, plain dicts, no I/O.

A *view* is what a client sees of a lease, a waiting request or the capacity; "model"
in a view is always a GPU model (``A100``), as everywhere in the scheduler.
"""

from __future__ import annotations

from .policy import Scheduler


def lease_view(
    lease, scheduler: Scheduler, now: float, utilisation: dict | None = None, warn_before=0
) -> dict:
    """A lease as the API and the pages show it.

    ``utilisation``: the last known utilisation per device UUID (NVML), percent.
    ``reclaim_at``/``reclaim_reason``: when and why the lease will be reclaimed (its
    server stopped, its GPUs released) if nothing changes; ``warning`` is true from
    ``warn_before`` seconds before that. ``taking_back``: a borrowed lease the policy
    wants back for a request within its quota (reclaimed at the next check).
    """
    utilisation = utilisation or {}
    due = lease.reclaim_at()
    return {
        "id": lease.id,
        "user": lease.user,
        "server": lease.request.server,
        "devices": [
            {
                "uuid": u,
                "model": scheduler.device(u).model,
                "index": scheduler.device(u).index,
                "utilisation": utilisation.get(u),
            }
            for u in lease.devices
        ],
        "granted_at": lease.granted_at,
        "idle_s": max(0.0, now - lease.last_active),
        "borrowed": lease.borrowed,
        "taking_back": lease.id in scheduler.taking_back,
        "reclaim_at": due[0] if due else None,
        "reclaim_reason": due[1] if due else None,
        "warning": bool(due) and now >= due[0] - warn_before,
    }


def wait_view(request, scheduler: Scheduler, now: float) -> dict:
    """A waiting request as the API and the wait page show it: its place in the queue
    (1-based) and the seconds until it is expected to get its GPUs (``eta_s``)."""
    return {
        "id": request.id,
        "user": request.user,
        "server": request.server,
        "count": request.count,
        "model": request.model,
        "submitted_at": request.submitted_at,
        # when the place was first taken (earlier than submitted_at when it was kept
        # across a hub restart)
        "queued_at": request.place,
        "position": scheduler.position(request.id),
        # while its GPUs are gone from the inventory, no end is known: a day is shown
        "eta_s": round(min(scheduler.eta(request.id, now), 86400.0)),
    }


def capacity_view(s: Scheduler, name: str, groups) -> dict:
    """The GPUs as user ``name`` (in ``groups``) sees them: free and total per GPU model
    (``models``), their quota and how many GPUs they hold (``used``)."""
    models: dict[str, dict] = {}
    free = {d.uuid for d in s.free_devices()}
    for device in s.devices.values():
        entry = models.setdefault(device.model, {"total": 0, "free": 0})
        entry["total"] += 1
        entry["free"] += device.uuid in free
    return {"models": models, "quota": s.quota(groups), "used": s.held_by(name)}
