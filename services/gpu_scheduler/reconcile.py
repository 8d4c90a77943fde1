"""The scheduler's periodic check against the hub: one plain coroutine.

Every ``gpus.check_every`` seconds:

1. a lease whose server is not running (nor starting) any more is released, once it is
   older than three check intervals (a server asking for GPUs is already "starting");
2. each lease's activity is taken from the hub (the server's last activity: kernels,
   terminals, the browser);
3. leases past their idle timeout or maximum lifetime, and borrowed leases the policy
   takes back for someone within their quota, are reclaimed: their servers are stopped
   through the hub's API and the GPUs handed on.
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


async def hub_servers(api_url: str, token: str) -> dict[tuple[str, str], dict]:
    """Running or starting servers by (user, server name): last activity and profile."""
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
                out[(user["name"], name)] = {
                    "last_activity": _timestamp(server.get("last_activity")),
                    "profile": (server.get("user_options") or {}).get("profile"),
                }
        next_page = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
        url = next_page["url"] if next_page else None
    return out


async def stop_server(api_url: str, token: str, user: str, server: str) -> None:
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
    grace: float,
    utilisation=None,
    busy_percent=10,
    gpu_profiles: dict | None = None,
) -> None:
    """One round: release orphans, record activity, reclaim what is due.

    ``grace``: seconds a lease may exist before its server must show up in the hub.
    ``utilisation``: with NVML, a function from device UUIDs to utilisation percent; a
    lease whose GPUs are at least ``busy_percent`` busy counts as active, whatever the
    hub says (a training loop started from a closed browser tab is not idle).
    ``gpu_profiles``: {profile name or None for the default: GPUs}; a running server of a
    GPU profile that holds no lease and waits for none is reported (``state.unleased``).
    """
    s = state.scheduler
    servers = await hub_servers(api_url, token)
    now = state.clock()
    for lease in list(s.leases.values()):
        key = (lease.user, lease.request.server)
        if key not in servers:
            if now - lease.granted_at > grace:
                log.info("Releasing GPUs of %s/%s: the server is not running", *key)
                state.release(lease.id)
            continue
        if servers[key]["last_activity"] is not None:
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
    due += [(s.leases[i], "borrowed, needed within quota") for i in sorted(s.reclaiming)]
    for lease, why in due:
        if lease.id not in s.leases:
            continue
        log.info("Reclaiming GPUs of %s/%s (%s)", lease.user, lease.request.server, why)
        await stop_server(api_url, token, lease.user, lease.request.server)
        state.release(lease.id)
    state.saved()
