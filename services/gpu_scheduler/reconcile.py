"""The scheduler's periodic check against the hub: one plain coroutine.

Every ``gpus.check_every`` seconds:

1. a lease is released at once when its server is not running with it: the server is
   gone, or it runs without this lease in its spawner state (a CPU profile, or a server
   started again since). A server still pending spawn keeps its fresh lease, and so does
   a lease granted after the hub was asked (:func:`stale`); a request waiting for a server
   that no longer waits (its spawn died with the hub) is orphaned: it keeps its place for
   ``gpus.orphan_grace`` seconds, for the server asked again (:meth:`.policy.Scheduler.orphan`),
   and is given up after it;
2. each lease's activity is taken from the hub (the server's last activity: kernels,
   terminals, the browser);
3. leases past their idle timeout or maximum lifetime, and borrowed leases the policy
   takes back for someone within their quota, are reclaimed: their servers are stopped
   through the hub's API and the GPUs handed on.

The spawner keeps its lease id in its state (``gpu_lease``, see
:class:`hub_config.gpu.GpuMixin`); the scheduler reads it with ``admin:server_state``.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


#: a server model without its spawner state (the token lacks ``admin:server_state``)
UNKNOWN = object()


def server_entry(server: dict) -> dict:
    """What the check needs of a server model from the hub's API.

    ``lease``: the lease the server runs with (None: none), or :data:`UNKNOWN` when the
    hub shows no state, or a state without ``profile``: a server started by a hub from
    before spawners kept their lease (it keeps its lease until it stops)."""
    state = server.get("state", UNKNOWN)
    if state is UNKNOWN or "profile" not in (state or {}):
        lease = UNKNOWN
    else:
        lease = state.get("gpu_lease")
    return {
        "last_activity": _timestamp(server.get("last_activity")),
        "profile": (server.get("user_options") or {}).get("profile"),
        "pending": server.get("pending"),
        "lease": lease,
    }


def stale(leases, queue, servers: dict, asked_at: float):
    """Leases to release and waiting requests to drop, with why (pure).

    ``servers``: the hub's running and pending servers by (user, server name), as
    :func:`server_entry` makes them, read from ``asked_at`` on: whatever was granted or
    submitted from then on is not judged against that answer. A server pending spawn
    keeps its lease; a server that runs must run with that lease (its spawner state says
    which it holds).
    """
    leases_out, requests_out = [], []
    for lease in leases:
        if lease.granted_at >= asked_at:
            continue
        server = servers.get((lease.user, lease.request.server))
        if server is None:
            leases_out.append((lease, "the server is not running"))
        elif server["pending"] == "spawn" or server["lease"] is UNKNOWN:
            continue
        elif server["lease"] != lease.id:
            leases_out.append((lease, "the server runs without this lease"))
    for request in queue:
        if request.submitted_at >= asked_at:
            continue
        server = servers.get((request.user, request.server))
        if server is None or server["pending"] != "spawn":
            requests_out.append((request, "the server no longer waits for GPUs"))
    return leases_out, requests_out


async def hub_servers(api_url: str, token: str) -> dict[tuple[str, str], dict]:
    """Running or starting servers by (user, server name): see :func:`server_entry`."""
    request = HTTPRequest(
        api_url.rstrip("/") + "/users?state=active",
        headers={
            "Authorization": f"token {token}",
            "Accept": "application/jupyterhub-pagination+json",
        },
    )
    out: dict[tuple[str, str], dict] = {}
    url = request.url
    while url:
        response = await AsyncHTTPClient().fetch(HTTPRequest(url, headers=request.headers))
        page = json.loads(response.body)
        users = page["items"] if isinstance(page, dict) else page
        for user in users:
            for name, server in (user.get("servers") or {}).items():
                out[(user["name"], name)] = server_entry(server)
        next_page = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
        url = next_page["url"] if next_page else None
    return out


async def stop_server(api_url: str, token: str, user: str, server: str) -> None:
    """Ask the hub to stop ``user``'s ``server`` ("" for the default server)."""
    path = f"/users/{quote(user, safe='')}/server"
    if server:
        path = f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}"
    await AsyncHTTPClient().fetch(
        HTTPRequest(
            api_url.rstrip("/") + path,
            method="DELETE",
            headers={"Authorization": f"token {token}"},
        ),
        raise_error=False,
    )


async def check(
    state,
    api_url: str,
    token: str,
    log,
    utilisation=None,
    busy_percent=10,
    gpu_profiles: dict | None = None,
    fetch=hub_servers,
) -> None:
    """One round: release orphans, record activity, reclaim what is due.

    ``utilisation``: with NVML, a function from device UUIDs to utilisation percent; a
    lease whose GPUs are at least ``busy_percent`` busy counts as active, whatever the
    hub says (a training loop started from a closed browser tab is not idle).
    ``gpu_profiles``: {profile name or None for the default: GPUs}; a running server of a
    GPU profile that holds no lease and waits for none is reported (``state.unleased``).
    ``fetch``: how the hub's servers are read (:func:`hub_servers`).
    """
    s = state.scheduler
    asked_at = state.clock()
    servers = await fetch(api_url, token)
    if servers and all(x["lease"] is UNKNOWN for x in servers.values()):
        log.warning("The hub shows no server state: grant the scheduler admin:server_state")
    leases, requests = stale(list(s.leases.values()), list(s.queue.values()), servers, asked_at)
    for request, why in requests:
        log.info(
            "Keeping the place of %s/%s in the GPU queue for %d s (%s): started again by "
            "then, it keeps its place",
            request.user,
            request.server,
            s.orphan_grace,
            why,
        )
        state.saved(s.orphan(request.id, state.clock()))
    for request in s.expire_orphans(state.clock()):
        log.warning(
            "Gave up the place of %s/%s in the GPU queue: the server was not started "
            "again within %d s (gpus.orphan_grace)",
            request.user,
            request.server,
            s.orphan_grace,
        )
        state.place_lost(request)
    for lease, why in leases:
        log.info("Releasing GPUs of %s/%s: %s", lease.user, lease.request.server, why)
        state.release(lease.id)
    now = state.clock()
    for lease in list(s.leases.values()):
        key = (lease.user, lease.request.server)
        if key in servers and servers[key]["last_activity"] is not None:
            s.touch(lease.id, servers[key]["last_activity"])
    if utilisation is not None and s.leases:
        try:
            busy = utilisation([u for x in s.leases.values() for u in x.devices])
        except Exception:
            log.exception("Reading GPU utilisation failed")
            busy = {}
        state.utilisation = dict(busy)
        for lease in list(s.leases.values()):
            if any(busy.get(u, 0) >= busy_percent for u in lease.devices):
                s.touch(lease.id, now)
    held = {(x.user, x.request.server) for x in s.leases.values()}
    held |= {(r.user, r.server) for r in s.queue.values()}
    unleased = []
    for key, server in sorted(servers.items()):
        if (gpu_profiles or {}).get(server["profile"]) and key not in held:
            unleased.append({"user": key[0], "server": key[1]})
    if unleased != state.unleased:
        for entry in unleased:
            log.warning("GPU server %(user)s/%(server)s runs without a GPU lease", entry)
        state.unleased = unleased
    due = [(lease, why) for lease, why in s.due(now)]
    due += [(s.leases[i], "borrowed, needed within quota") for i in sorted(s.taking_back)]
    for lease, why in due:
        if lease.id not in s.leases:
            continue
        if (servers.get((lease.user, lease.request.server)) or {}).get("pending") == "spawn":
            # a server still starting is not idle; it is judged once it runs
            continue
        log.info("Reclaiming GPUs of %s/%s (%s)", lease.user, lease.request.server, why)
        await stop_server(api_url, token, lease.user, lease.request.server)
        state.release(lease.id)
    state.saved()
