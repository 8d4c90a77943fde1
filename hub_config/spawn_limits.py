"""What a person (or a script) is told when the hub will not start one more server now.

JupyterHub refuses a start with ``429`` in two cases: ``concurrent_spawn_limit`` servers
are already starting (``Too many users trying to log in right now``, which is not what
happened: nobody's log-in was refused) and ``active_server_limit`` servers are running
(``Active user limit exceeded``, with no ``Retry-After``). These thin subclasses of
JupyterHub's spawn page and server API keep JupyterHub's checks and status, and say in
one sentence what is going on and when to try again; both limits answer with
``Retry-After``. The authenticator registers them in front of JupyterHub's own routes.
A start refused because the database's disk is full is worded too
(:class:`hub_config.disk_full.DiskFullRefusal`).
"""

from __future__ import annotations

from jupyterhub.apihandlers import users
from jupyterhub.handlers import pages
from tornado import web

from .disk_full import DiskFullRefusal

#: Seconds suggested before trying again when every allowed server is running: a
#: server frees its place when someone stops theirs or the idle culler does.
FULL_RETRY_AFTER = 120


def starting_message(limit: int, retry_after: int) -> str:
    """The refusal while ``limit`` servers are starting (pure)."""
    return (
        f"{limit} servers are starting right now, as many as this hub starts at once: "
        f"yours was not started; please try again in {retry_after} seconds."
    )


def full_message(limit: int, retry_after: int = FULL_RETRY_AFTER) -> str:
    """The refusal while ``limit`` servers are running (pure)."""
    minutes = max(1, round(retry_after / 60))
    return (
        f"This hub is running {limit} servers, as many as it may: yours was not started; "
        f"please try again in {minutes} minutes, when someone has stopped theirs "
        "(or ask an admin to raise hub.active_server_limit)."
    )


class SpawnLimits:
    """The two refusals of ``spawn_single_user`` worded as above.

    Needs JupyterHub's ``BaseHandler`` after it in the bases (``spawn_single_user``,
    ``concurrent_spawn_limit``, ``active_server_limit``). Order of the bases: first,
    ``SpawnLimits, <JupyterHub's handler>``.
    """

    async def spawn_single_user(self, user, server_name="", display_name="", options=None):
        try:
            return await super().spawn_single_user(
                user, server_name, display_name, options=options
            )
        except web.HTTPError as e:
            if e.status_code != 429:
                raise
            headers = getattr(e, "headers", None) or {}
            if "Retry-After" in headers:  # concurrent_spawn_limit: JupyterHub chose the time
                retry = int(headers["Retry-After"])
                message = starting_message(self.concurrent_spawn_limit, retry)
            else:  # active_server_limit
                retry = FULL_RETRY_AFTER
                message = full_message(self.active_server_limit, retry)
            refusal = web.HTTPError(429, message)
            refusal.headers = {"Retry-After": str(retry)}  # written by write_error
            raise refusal from None


class UserServerAPIHandler(DiskFullRefusal, SpawnLimits, users.UserServerAPIHandler):
    """``POST /hub/api/users/<name>/server`` and ``.../servers/<server>``."""


class SpawnHandler(DiskFullRefusal, SpawnLimits, pages.SpawnHandler):
    """``/hub/spawn``: the page a browser opens to start a server."""


#: In front of JupyterHub's routes of the same paths (under the hub's prefix).
ROUTES = [
    (r"/api/users/([^/]+)/server", UserServerAPIHandler),
    (r"/api/users/([^/]+)/servers/([^/]*)", UserServerAPIHandler),
    (r"/spawn", SpawnHandler),
    (r"/spawn/([^/]+)", SpawnHandler),
    (r"/spawn/([^/]+)/([^/]+)", SpawnHandler),
]
