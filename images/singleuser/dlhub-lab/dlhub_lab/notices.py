"""GPU notices for this server, read from the GPU scheduler with the server's own token."""

from __future__ import annotations

import json
import os
import time

from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

MESSAGES = {
    "idle": "Your GPU has been idle for {idle} min: this server will be stopped at {at} "
    "to free it. Use it, or save your work.",
    "lifetime": "This server reaches its GPU time limit and will be stopped at {at}. "
    "Save your work.",
}


def notices_for(me: dict, server: str) -> list[dict]:
    """Warnings for ``server`` from the scheduler's ``api/me`` answer (pure)."""
    out = []
    for lease in me.get("leases", []):
        if lease.get("server") != server or not lease.get("warning"):
            continue
        at = time.strftime("%H:%M UTC", time.gmtime(lease["reclaim_at"]))
        template = MESSAGES.get(lease["reclaim_reason"], MESSAGES["lifetime"])
        message = template.format(idle=round(lease["idle_s"] / 60), at=at)
        out.append(
            {
                "key": f"{lease['id']}:{lease['reclaim_reason']}",
                "level": "warning",
                "message": message,
                "reclaim_at": lease["reclaim_at"],
            }
        )
    return out


class GpuNoticesHandler(APIHandler):
    # the lab extension's polling is not the user's activity
    _track_activity = False

    @web.authenticated
    async def get(self):
        scheduler = os.environ.get("DLHUB_GPU_SCHEDULER_URL", "")
        notices: list[dict] = []
        if scheduler:
            request = HTTPRequest(
                scheduler.rstrip("/") + "/api/me",
                headers={"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}"},
                request_timeout=10,
            )
            try:
                response = await AsyncHTTPClient().fetch(request)
                me = json.loads(response.body)
            except Exception as e:  # the scheduler may be restarting: no notice this time
                self.log.warning("Reading GPU notices failed: %s", e)
            else:
                notices = notices_for(me, os.environ.get("JUPYTERHUB_SERVER_NAME", ""))
        self.finish(json.dumps({"notices": notices}))
