"""Sign-up with admin approval: NativeAuthenticator, adapted to JupyterHub 6.

Thin subclasses only:

- the login page: NativeAuthenticator 1.3 times logins with ``self.statsd``, which
  JupyterHub 6 no longer has, and renders error pages through its own form renderer,
  which cannot render synchronously; both are bridged here.
- approve / discard / the authorize page / an admin's change-password, and the first
  admin's setup page: :mod:`hub_config.approval` (a GET changes nothing; changes are
  POSTs with the XSRF token).
- what sign-up and log-in accept (the username rule, passwords of any length) and how
  often (lock-out message, per-address throttle): :mod:`hub_config.login_checks`; the
  REST API's user creation with the same username rule: :mod:`hub_config.user_api`.
- known users (``approve_known_users``): a sign-up with the name of a user the hub
  already has (created by an admin in the admin panel, through the API or with
  ``dlhub roster import``) is approved at once, and the sign-up page says so.
"""

from __future__ import annotations

from jupyterhub import orm
from jupyterhub.handlers import BaseHandler
from nativeauthenticator import NativeAuthenticator, handlers
from traitlets import Bool

from . import approval, login_checks, spawn_limits, user_api


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


class LoginHandler(login_checks.LoginChecks, handlers.LoginHandler):
    """NativeAuthenticator's login page with dlhub's checks in front of it.

    Order of the bases: ``LoginChecks`` (throttle, username rule, lock-out message) before
    NativeAuthenticator's handler, whose ``post`` runs once the checks pass.
    """

    statsd = _NoStats()

    def render_template(self, name, **ns):
        # render error pages as the hub does, not through the login form
        return BaseHandler.render_template(self, name, **ns)


class SignUpHandler(login_checks.SignUpChecks, approval.FirstAdminGuard, handlers.SignUpHandler):
    """NativeAuthenticator's sign-up page with dlhub's checks in front of it.

    Order of the bases: ``SignUpChecks`` (throttle, rules, pending limit), then
    ``FirstAdminGuard`` (unclaimed admin names), then NativeAuthenticator's handler, which
    stores the account.
    """

    def get_result_message(self, user, *args):
        # NativeAuthenticator tells everyone but admins to wait for the admin; an account
        # approved at sign-up can log in now, and its owner should hear so
        *checks, user_is_admin = args
        approved = user is not None and user.is_authorized
        return super().get_result_message(user, *checks, user_is_admin or approved)


REPLACEMENTS = {
    handlers.LoginHandler: LoginHandler,
    handlers.SignUpHandler: SignUpHandler,
    **approval.REPLACEMENTS,
}


class DlhubAuthenticator(
    approval.FirstAdminSetup, login_checks.CredentialRules, NativeAuthenticator
):
    """NativeAuthenticator (configured as ``c.NativeAuthenticator``) with the handlers above."""

    approve_known_users = Bool(
        True,
        help="""Approve a sign-up at once when the hub already has a user of that name.

        Admins create users before their owners sign up: in the admin panel, through
        the REST API, or with ``dlhub roster import``. With this on (the default), the
        first person to sign up with such a name can log in without waiting for an
        admin's approval; with it off, every sign-up waits for approval as usual.
        Users the hub has as admins are never approved this way (whoever came first
        would be admin): their sign-up waits for an admin's approval.
        Set from the platform config key ``auth.approve_known_users``.
        """,
    ).tag(config=True)

    def get_authed_users(self):
        """NativeAuthenticator's approved names, plus the hub's users (not its admins) when
        approving them."""
        authed = super().get_authed_users()
        if self.approve_known_users:
            known = self.db.query(orm.User.name).filter(orm.User.admin.is_(False))
            authed = authed | {name for (name,) in known}
        return authed

    def get_handlers(self, app):
        native = [(route, REPLACEMENTS.get(h, h)) for route, h in super().get_handlers(app)]
        return user_api.ROUTES + spawn_limits.ROUTES + native + approval.ROUTES
