"""Sign-up with admin approval: NativeAuthenticator, adapted to JupyterHub 6.

Thin subclasses only:

- the login page: NativeAuthenticator 1.3 times logins with ``self.statsd``, which
  JupyterHub 6 no longer has, and renders error pages through its own form renderer,
  which cannot render synchronously; both are bridged here.
- approve / discard: NativeAuthenticator changes an account on a plain GET link, which a
  page on another site could trigger in an admin's browser. These handlers refuse
  requests the browser marks as coming from another site (``Sec-Fetch-Site``).
- known users (``approve_known_users``): a sign-up with the name of a user the hub
  already has (created by an admin in the admin panel, through the API or with
  ``dlhub roster import``) is approved at once, and the sign-up page says so.
"""

from __future__ import annotations

from jupyterhub import orm
from jupyterhub.handlers import BaseHandler
from nativeauthenticator import NativeAuthenticator, handlers
from tornado import web
from traitlets import Bool


class _NoTimer:
    def start(self):
        return self

    def stop(self, send=True):
        pass


class _NoStats:
    """Stands in for the statsd client that JupyterHub 6 removed (metrics are Prometheus)."""

    def timer(self, name):
        return _NoTimer()

    def incr(self, *args, **kwargs):
        pass


class LoginHandler(handlers.LoginHandler):
    statsd = _NoStats()

    def render_template(self, name, **ns):
        # render error pages as the hub does, not through the login form
        return BaseHandler.render_template(self, name, **ns)


class SignUpHandler(handlers.SignUpHandler):
    def get_result_message(self, user, *args):
        # NativeAuthenticator tells everyone but admins to wait for the admin; an account
        # approved at sign-up can log in now, and its owner should hear so
        *checks, user_is_admin = args
        approved = user is not None and user.is_authorized
        return super().get_result_message(user, *checks, user_is_admin or approved)


class _SameSiteOnly:
    def prepare(self):
        site = self.request.headers.get("Sec-Fetch-Site", "same-origin")
        if site not in ("same-origin", "none"):
            raise web.HTTPError(403, "Account changes must come from the hub's own pages.")
        return super().prepare()


class ToggleAuthorizationHandler(_SameSiteOnly, handlers.ToggleAuthorizationHandler):
    pass


class DiscardHandler(_SameSiteOnly, handlers.DiscardHandler):
    pass


REPLACEMENTS = {
    handlers.LoginHandler: LoginHandler,
    handlers.SignUpHandler: SignUpHandler,
    handlers.ToggleAuthorizationHandler: ToggleAuthorizationHandler,
    handlers.DiscardHandler: DiscardHandler,
}


class DlhubAuthenticator(NativeAuthenticator):
    """NativeAuthenticator (configured as ``c.NativeAuthenticator``) with the handlers above."""

    approve_known_users = Bool(
        True,
        help="""Approve a sign-up at once when the hub already has a user of that name.

        Admins create users before their owners sign up: in the admin panel, through
        the REST API, or with ``dlhub roster import``. With this on (the default), the
        first person to sign up with such a name can log in without waiting for an
        admin's approval; with it off, every sign-up waits for approval as usual.
        Set from the platform config key ``auth.approve_known_users``.
        """,
    ).tag(config=True)

    def get_authed_users(self):
        """NativeAuthenticator's approved names, plus the hub's users when approving them."""
        authed = super().get_authed_users()
        if self.approve_known_users:
            authed = authed | {name for (name,) in self.db.query(orm.User.name)}
        return authed

    def get_handlers(self, app):
        return [(route, REPLACEMENTS.get(h, h)) for route, h in super().get_handlers(app)]
