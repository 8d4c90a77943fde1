"""The scheduler's pages in the browser: "who holds which GPU" and the wait page.

Reached from the hub's Services menu (``/services/gpu-scheduler/``) and logged in through
the hub (OAuth; the cookie is this service's own). Only the browser's cookie counts here:
a request carrying an API token in a header is refused, so the token inside a user's
server cannot act on these pages. Forms carry the hub's xsrf token.

    GET  ./                        admins: every lease and the queue; everyone: their share
    POST ./leases/ID/reclaim       (admin) reclaim: stop the server, release its GPUs
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

from .report import capacity_view, wait_view
from .state import State

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def minutes(seconds: float) -> int:
    """Seconds as whole minutes, never below 0 (the ``minutes`` filter)."""
    return max(0, round(seconds / 60))


def clock_time(timestamp: float) -> str:
    """A time as the pages write it, in UTC (the ``clock`` filter)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


TEMPLATES.filters["minutes"] = minutes
TEMPLATES.filters["clock"] = clock_time


def render(name: str, **values) -> str:
    """Template ``name`` as HTML. Every page needs ``user`` (the hub's user model),
    ``hub_url``, ``prefix`` (the pages' base URL) and ``xsrf`` (the form field)."""
    return TEMPLATES.get_template(name).render(quote=lambda v: quote(v, safe=""), **values)


class PageHandler(HubOAuthenticated, web.RequestHandler):
    """A page for the browser: logged in through the hub's OAuth (cookie only), errors as
    a page, and :meth:`render_page` filling in what every template needs."""

    def initialize(self, state: State, hub_auth, hub_url: str):
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
        page = render("error.html", status=status_code, message=message, hub_url=self.hub_url)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)

    def render_page(self, name: str, **values) -> None:
        """Send template ``name`` with ``values`` and what base.html and the forms use."""
        page = render(
            name,
            user=self.current_user,
            hub_url=self.hub_url,
            prefix=self.hub_auth.base_url,
            xsrf=self.xsrf_form_html(),
            **values,
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(page)

    def spawn_page(self, user: str, server: str) -> str:
        """The hub's progress page of ``user``'s ``server``."""
        path = f"spawn-pending/{quote(user, safe='')}"
        return self.hub_url + (f"{path}/{quote(server, safe='')}" if server else path)


class IndexPage(PageHandler):
    """``GET ./``: the caller's share; for admins also who holds which GPU (with the
    utilisation and the early warning, as the API shows them), the queue and quotas."""

    @web.authenticated
    def get(self):
        self.render_page("index.html", **index_values(self.state, self.current_user))


def index_values(state: State, user: dict) -> dict:
    """What index.html shows ``user`` (the hub's user model: name, admin, groups) now.

    Leases are shown through :meth:`.State.show_lease`, as the API shows them: with the
    utilisation NVML last reported and the early warning from ``gpus.warn_before``."""
    s, now = state.scheduler, state.clock()
    leases = [state.show_lease(x, now) for x in s.leases.values()]
    waiting = [wait_view(r, s, now) for r in s.waiting()]
    mine = {"leases": [x for x in leases if x["user"] == user["name"]]}
    mine["waiting"] = [r for r in waiting if r["user"] == user["name"]]
    return {
        "admin": bool(user.get("admin")),
        "leases": leases,
        "waiting": waiting,
        "unleased": state.unleased,
        "quotas": s.quotas,
        "default_quota": s.default_quota,
        "mine": mine,
        "capacity": capacity_view(s, user["name"], user.get("groups", [])),
    }


class ReclaimPage(PageHandler):
    """``POST ./leases/ID/reclaim`` (admins): reclaim the lease (:meth:`.State.reclaim`)."""

    @web.authenticated
    async def post(self, lease_id):
        if not self.current_user.get("admin"):
            raise web.HTTPError(403, "only admins can take GPUs back")
        await self.state.reclaim(lease_id)  # already gone: nothing to do
        self.redirect(self.hub_auth.base_url)


class WaitPage(PageHandler):
    """``./wait/SERVER``: the caller's place in the queue; cancel, or start on CPU."""

    def waiting(self, server: str):
        """The caller's request waiting for ``server``, or None."""
        name = self.current_user["name"]
        for request in self.state.scheduler.waiting():
            if (request.user, request.server) == (name, server):
                return request
        return None

    @web.authenticated
    def get(self, server):
        request = self.waiting(server)
        s, now = self.state.scheduler, self.state.clock()
        self.render_page(
            "wait.html",
            server=server,
            waiting=wait_view(request, s, now) if request else None,
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
