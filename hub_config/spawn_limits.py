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


#: ``Sec-Fetch-Site`` values of a request the person made on this hub (its own pages, or
#: an address typed or bookmarked); a client that sends none counts as one of these.
OWN_SITE = ("same-origin", "none")


class NoStartFromOtherSites:
    """A spawn page with options in its query (``?opt-profile=gpu``) that the browser
    reached from another site (``Sec-Fetch-Site`` cross-site or same-site: a link on a web
    page, a redirect after one, such as an "Open in dlhub" link) shows the spawn form
    with the asked profile chosen, instead of starting the server: only the person's
    press of Start (a POST carrying the form's XSRF token) starts it, so a page elsewhere
    cannot make someone hold a GPU. From the hub's own pages, an address typed or
    bookmarked, or a client that sends no ``Sec-Fetch-Site`` (scripts), the query starts
    the server as JupyterHub does.

    Needs ``pages.SpawnHandler`` after it in the bases (``_get_user_options``, 6.1.1,
    checked by tests/unit/test_upstream_contract.py). The form reads
    :attr:`dlhub_asked_profile` through ``spawner.handler``.
    """

    #: the profile a link from another site asked for (the form shows it chosen)
    dlhub_asked_profile: str | None = None

    def _get_user_options(self, query_options):
        options = super()._get_user_options(query_options)
        site = self.request.headers.get("Sec-Fetch-Site", "same-origin")
        if options and self.request.method == "GET" and site not in OWN_SITE:
            asked = options.get("profile") or [None]
            self.dlhub_asked_profile = asked[0] if isinstance(asked[0], str) else None
            self.log.info("Spawn page reached from another site (%s): the form, no start", site)
            return {}
        return options


class SpawnHandler(DiskFullRefusal, SpawnLimits, NoStartFromOtherSites, pages.SpawnHandler):
    """``/hub/spawn``: the page a browser opens to start a server."""


#: In front of JupyterHub's routes of the same paths (under the hub's prefix).
ROUTES = [
    (r"/api/users/([^/]+)/server", UserServerAPIHandler),
    (r"/api/users/([^/]+)/servers/([^/]*)", UserServerAPIHandler),
    (r"/spawn", SpawnHandler),
    (r"/spawn/([^/]+)", SpawnHandler),
    (r"/spawn/([^/]+)/([^/]+)", SpawnHandler),
]
