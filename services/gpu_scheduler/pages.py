"""The scheduler's pages in the browser: "who holds which GPU" and the wait page.

Reached from the hub's Services menu (``/services/gpu-scheduler/``) and logged in through
the hub (OAuth; the cookie is this service's own). Only the browser's cookie counts here:
a request carrying an API token in a header is refused, so the token inside a user's
server cannot act on these pages. Forms carry the hub's xsrf token.

    GET  ./                        admins: every lease and the queue; everyone: their share
    POST ./leases/ID/reclaim       (admin) stop the server and take its GPUs back
    GET  ./wait/SERVER             the caller's place in the queue, with two choices:
    POST ./wait/SERVER             action=cancel (stop waiting) or action=cpu (start on CPU)
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def minutes(seconds: float) -> int:
    return max(0, round(seconds / 60))


def clock_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


TEMPLATES.filters["minutes"] = minutes
TEMPLATES.filters["clock"] = clock_time


class PageHandler(HubOAuthenticated, web.RequestHandler):
    def initialize(self, state, hub_auth, hub_url: str):
        self.state = state
        self.hub_auth = hub_auth
        self.hub_url = hub_url

    def get_current_user(self):
        if "Authorization" in self.request.headers:
            raise web.HTTPError(403, "these pages are for the browser; use the JSON API")
        return super().get_current_user()

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = self._reason
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        page = TEMPLATES.get_template("error.html").render(
            status=status_code, message=message, hub_url=self.hub_url
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)

    def render_page(self, name: str, **values) -> None:
        s = self.state.scheduler
        page = TEMPLATES.get_template(name).render(
            user=self.current_user,
            hub_url=self.hub_url,
            prefix=self.hub_auth.base_url,
            xsrf=self.xsrf_form_html(),
            now=self.state.clock(),
            devices=s.devices,
            utilisation=self.state.utilisation,
            quote=lambda v: quote(v, safe=""),
            **values,
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(page)

    def spawn_page(self, user: str, server: str) -> str:
        path = f"spawn-pending/{quote(user, safe='')}"
        return self.hub_url + (f"{path}/{quote(server, safe='')}" if server else path)


class IndexPage(PageHandler):
    @web.authenticated
    def get(self):
        from .service import capacity_model, lease_model, wait_model

        user = self.current_user
        s, now = self.state.scheduler, self.state.clock()
        leases = [lease_model(x, s, now) for x in s.leases.values()]
        waiting = [wait_model(r, s, now) for r in s.waiting()]
        mine = {"leases": [x for x in leases if x["user"] == user["name"]]}
        mine["waiting"] = [r for r in waiting if r["user"] == user["name"]]
        self.render_page(
            "index.html",
            admin=bool(user.get("admin")),
            leases=leases,
            waiting=waiting,
            unleased=self.state.unleased,
            quotas=s.quotas,
            default_quota=s.default_quota,
            mine=mine,
            capacity=capacity_model(s, user["name"], user.get("groups", [])),
        )


class ReclaimPage(PageHandler):
    @web.authenticated
    async def post(self, lease_id):
        if not self.current_user.get("admin"):
            raise web.HTTPError(403, "only admins can take GPUs back")
        await self.state.reclaim(lease_id)  # already gone: nothing to do
        self.redirect(self.hub_auth.base_url)


class WaitPage(PageHandler):
    def waiting(self, server: str):
        name = self.current_user["name"]
        for request in self.state.scheduler.waiting():
            if (request.user, request.server) == (name, server):
                return request
        return None

    @web.authenticated
    def get(self, server):
        from .service import wait_model

        request = self.waiting(server)
        s, now = self.state.scheduler, self.state.clock()
        self.render_page(
            "wait.html",
            server=server,
            waiting=wait_model(request, s, now) if request else None,
            spawn_page=self.spawn_page(self.current_user["name"], server),
        )

    @web.authenticated
    def post(self, server):
        action = self.get_body_argument("action", "")
        if action not in ("cancel", "cpu"):
            raise web.HTTPError(400, "action must be cancel or cpu")
        request = self.waiting(server)
        if request is not None:
            self.state.withdraw(request.id, action)
        self.redirect(self.spawn_page(self.current_user["name"], server))
