"""The REST API's user creation and renaming, with dlhub's username rule.

JupyterHub answers a name its authenticator refuses with ``400 Invalid username: <the
whole name>`` (or ``Failed to create user``), which says neither what is wrong nor what is
allowed. These thin subclasses of JupyterHub's handlers check the names first and answer
``400`` with one sentence saying what a username may be (:mod:`hub_config.usernames`);
everything else is JupyterHub's. The authenticator registers them in front of
JupyterHub's own routes.
"""

from __future__ import annotations

from jupyterhub.apihandlers import users
from jupyterhub.scopes import needs_scope
from tornado import web

from . import usernames


class _NameCheck:
    """The username rule for JupyterHub's user API handlers.

    Needs: ``self.authenticator`` (``normalize_username``). Order of the bases: first,
    ``_NameCheck, <JupyterHub's users API handler>``; it overrides nothing.
    """

    def check_name(self, name, normalize: bool = True) -> None:
        """400 unless ``name`` (lower-cased first where JupyterHub does) is allowed."""
        if not isinstance(name, str):
            raise web.HTTPError(400, "A username must be a string.")
        if normalize:
            name = self.authenticator.normalize_username(name)
        problem = usernames.problem(name)
        if problem:
            raise web.HTTPError(400, problem)


class UserListAPIHandler(_NameCheck, users.UserListAPIHandler):
    """``POST /hub/api/users`` with ``{"usernames": [...]}``."""

    @needs_scope("admin:users")
    async def post(self):
        data = self.get_json_body()
        names = data.get("usernames") if isinstance(data, dict) else None
        if not isinstance(names, list):
            raise web.HTTPError(400, 'Send {"usernames": ["name", ...]}.')
        for name in names:
            self.check_name(name)
        return await super().post()


class UserAPIHandler(_NameCheck, users.UserAPIHandler):
    """``POST /hub/api/users/<name>`` (create) and ``PATCH`` with a new ``name``."""

    @needs_scope("admin:users")
    async def post(self, user_name):
        # JupyterHub creates the name of the path as it is; an existing user is its 409
        if self.find_user(user_name) is None:
            self.check_name(user_name, normalize=False)
        return await super().post(user_name)

    @needs_scope("admin:users")
    async def patch(self, user_name):
        data = self.get_json_body()
        if isinstance(data, dict) and "name" in data and data["name"] != user_name:
            self.check_name(data["name"])
        return await super().patch(user_name)


#: In front of JupyterHub's routes of the same paths (under the hub's prefix).
ROUTES = [
    (r"/api/users", UserListAPIHandler),
    (r"/api/users/([^/]+)", UserAPIHandler),
]
