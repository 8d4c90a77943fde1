"""Account approval, the first admin, and the admin's view of pending sign-ups.

Thin subclasses of NativeAuthenticator's handlers:

- ``/hub/authorize`` lists the accounts in three groups (waiting for approval, approved
  but never logged in, the others); every change is a form that POSTs with the XSRF
  token (JupyterHub's ``BaseHandler`` refuses a POST without it).
- ``/hub/authorize/<name>`` and ``/hub/discard/<name>``: NativeAuthenticator changes the
  account on a GET of these links. Here a GET only shows what would change and a button;
  the POST changes it. An unknown name is a 404 page, never a 500.
- ``/hub/change-password/<name>`` (admins): an unknown name is a 404 for the POST too.
- ``/hub/first-admin#token=...``: the one-time setup page of :mod:`hub_config.first_admin`;
  the sign-up page refuses the admin names that have no account yet.

The navigation bar (``templates/page.html``) shows admins the number of pending sign-ups
(:func:`pending_signups`), and an admin with pending sign-ups lands on the hub's home page
after logging in (:func:`landing_url`) instead of in JupyterLab.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

from jupyterhub import orm
from jupyterhub.handlers import BaseHandler
from nativeauthenticator import handlers
from nativeauthenticator.orm import UserInfo
from tornado import web
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from . import first_admin

TEMPLATES = Path(__file__).parent / "templates"
admin_users_scope = handlers.admin_users_scope
#: Longest name quoted back in a message (names are bounded, but a message need not be long).
SHOWN = 64


def shown(name: str) -> str:
    return name if len(name) <= SHOWN else name[:SHOWN] + "…"


def path_part(name: str) -> str:
    """``name`` as one URL path segment (``/`` and ``%`` included)."""
    return quote(name, safe="")


def group_accounts(infos, last_activity: dict) -> dict[str, list]:
    """The authorize page's groups: ``pending`` (waiting for approval), ``never``
    (approved, never logged in) and ``active`` (approved, logged in at least once).

    ``last_activity`` maps a hub user's name to its ``last_activity`` (``None``: never);
    an approved account without a hub user has never logged in either.
    """
    groups = {"pending": [], "never": [], "active": []}
    for info in sorted(infos, key=lambda i: i.username):
        row = SimpleNamespace(
            name=info.username,
            path=path_part(info.username),
            email=info.email,
            has_2fa=info.has_2fa,
            last_activity=last_activity.get(info.username),
        )
        if not info.is_authorized:
            groups["pending"].append(row)
        elif row.last_activity is None:
            groups["never"].append(row)
        else:
            groups["active"].append(row)
    return groups


def count_pending(db) -> int:
    return db.query(UserInfo).filter(UserInfo.is_authorized.is_(False)).count()


class _Pending:
    """The number of pending sign-ups, counted only when a template shows it."""

    def __init__(self, db):
        self._db = db
        self._count = None

    def __int__(self):
        if self._count is None:
            self._count = count_pending(self._db)
        return self._count

    def __str__(self):
        return str(int(self))


def pending_signups(user):
    """``c.JupyterHub.template_vars["dlhub_pending_signups"]``: for the navigation bar."""
    return 0 if user is None else _Pending(user.db)


def landing_url(handler) -> str:
    """``c.JupyterHub.default_url``: an admin with sign-ups to approve lands on the hub's
    home page (where the navigation shows them); everyone else as JupyterHub decides."""
    user = handler.current_user
    if user is not None and user.admin and count_pending(handler.db):
        return handler.hub.base_url + "home"
    return ""


class FirstAdminSetup(LoggingConfigurable):
    """The authenticator's side of the first admin's setup.

    Needs from the authenticator after it: ``admin_users`` (JupyterHub) and
    ``user_exists`` (NativeAuthenticator). Order of the bases: first,
    ``FirstAdminSetup, CredentialRules, NativeAuthenticator`` (see
    :class:`hub_config.auth.DlhubAuthenticator`); it overrides nothing.
    """

    first_admin_token_file = Unicode(
        "",
        help="""File holding the one-time token of the first admin's setup link.

        ``dlhub up`` writes it (mode 0600) and prints the link
        ``<hub>/hub/first-admin#token=<token>`` while an admin named in
        ``admin_users`` has no account; the page removes it once an admin account
        is made with it. Empty: no setup link works, and admin names without an
        account cannot be claimed from the web at all. dlhub sets it to
        ``<data_dir>/first-admin-token``.
        """,
    ).tag(config=True)

    def unclaimed_admins(self) -> list[str]:
        """The admin names nobody has signed up with yet."""
        return sorted(name for name in self.admin_users if not self.user_exists(name))


class FirstAdminGuard:
    """Mixed into the sign-up handler: an admin name without an account is not for
    sign-up (whoever came first would be admin); it is claimed on the setup page.

    Needs: ``self.authenticator`` (``normalize_username``, ``admin_users``,
    ``user_exists``) and NativeAuthenticator's sign-up handler after it, whose ``post``
    runs when the name is not an unclaimed admin's. Order of the bases: ``SignUpChecks,
    FirstAdminGuard, nativeauthenticator.handlers.SignUpHandler``.
    """

    async def post(self):
        auth = self.authenticator
        name = auth.normalize_username(self.get_body_argument("username", "", strip=False))
        if name in auth.admin_users and not auth.user_exists(name):
            raise web.HTTPError(
                403,
                f"'{shown(name)}' is an admin name: its account is made through the one-time "
                "setup link that `dlhub up` printed when the hub started (or with "
                "`dlhub admin NAME` on the server), not here.",
            )
        return await super().post()


class _FromTheHubOnly:
    """Defence in depth: a POST the browser marks as coming from another site is refused
    even when it carries the XSRF token (which alone already stops a forged form).

    Needs: a JupyterHub handler after it in the bases (``prepare``, ``hub``,
    ``redirect``) with ``self.authenticator`` a NativeAuthenticator (``get_user``).
    Order of the bases: first, ``_FromTheHubOnly, <NativeAuthenticator's handler>``.
    """

    async def prepare(self):
        # after the hub's own checks (the user, the XSRF token): an error page rendered
        # before them would hand this browser an XSRF cookie of nobody
        await super().prepare()
        if self.request.method not in ("GET", "HEAD"):
            site = self.request.headers.get("Sec-Fetch-Site", "same-origin")
            if site not in ("same-origin", "none"):
                raise web.HTTPError(403, "Account changes must come from the hub's own pages.")

    def account(self, name: str) -> UserInfo:
        info = self.authenticator.get_user(name)
        if info is None:
            raise web.HTTPError(
                404, f"There is no account named '{shown(name)}': see the list at /hub/authorize."
            )
        return info

    def back_to_list(self):
        self.redirect(self.hub.base_url + "authorize", status=303)


class AuthorizationAreaHandler(handlers.AuthorizationAreaHandler):
    """``/hub/authorize``: pending sign-ups first, then approved accounts."""

    @web.authenticated
    @admin_users_scope
    async def get(self):
        infos = self.db.query(UserInfo).all()
        last = dict(self.db.query(orm.User.name, orm.User.last_activity))
        html = await self.render_template(
            "dlhub-authorize.html",
            ask_email=self.authenticator.ask_email_on_signup,
            **group_accounts(infos, last),
        )
        self.finish(html)


class ApprovalHandler(_FromTheHubOnly, handlers.ToggleAuthorizationHandler):
    """``/hub/authorize/<name>``: GET asks, POST (``action`` approve or revoke) does it.

    The action is explicit rather than a toggle, so a form sent twice does not undo itself.
    """

    @web.authenticated
    @admin_users_scope
    async def get(self, name):
        info = self.account(name)
        action = "revoke" if info.is_authorized else "approve"
        html = await self.render_template(
            "dlhub-account-action.html",
            account=name,
            path=path_part(name),
            form_action="authorize",
            action=action,
            button="Revoke approval" if info.is_authorized else "Approve",
            question=(
                f"Take away the approval of '{name}'? They can no longer log in."
                if info.is_authorized
                else f"Approve '{name}'? They can log in from then on."
            ),
        )
        self.finish(html)

    @web.authenticated
    @admin_users_scope
    async def post(self, name):
        info = self.account(name)
        action = self.get_body_argument("action", "")
        if action not in ("approve", "revoke"):
            raise web.HTTPError(400, "Say action=approve or action=revoke.")
        if action == "revoke" and info.username == self.current_user.name:
            raise web.HTTPError(409, "You cannot revoke your own approval: ask another admin.")
        if (action == "approve") != bool(info.is_authorized):
            UserInfo.change_authorization(self.db, info.username)
            self.log.info("%s: %s by %s", action, info.username, self.current_user.name)
        self.back_to_list()


class DiscardHandler(_FromTheHubOnly, handlers.DiscardHandler):
    """``/hub/discard/<name>``: GET asks, POST removes a sign-up that was not approved."""

    def pending_account(self, name) -> UserInfo:
        info = self.account(name)
        if info.is_authorized:
            raise web.HTTPError(
                409, f"'{shown(name)}' is approved: revoke the approval first, then discard."
            )
        return info

    @web.authenticated
    @admin_users_scope
    async def get(self, name):
        self.pending_account(name)
        html = await self.render_template(
            "dlhub-account-action.html",
            account=name,
            path=path_part(name),
            form_action="discard",
            action="discard",
            button="Discard",
            question=f"Discard the sign-up of '{name}'? The name becomes free again.",
        )
        self.finish(html)

    @web.authenticated
    @admin_users_scope
    async def post(self, name):
        self.pending_account(name)
        # NativeAuthenticator's GET removed the sign-up (and a hub user of that name)
        await super().get(name)
        self.log.info("discard: %s by %s", name, self.current_user.name)


class ChangePasswordAdminHandler(_FromTheHubOnly, handlers.ChangePasswordAdminHandler):
    """``/hub/change-password/<name>`` for admins: an unknown name is a 404 page."""

    @web.authenticated
    @admin_users_scope
    async def get(self, user_name):
        self.account(user_name)
        await super().get(user_name)

    @web.authenticated
    @admin_users_scope
    async def post(self, user_name):
        self.account(user_name)
        await super().post(user_name)


class FirstAdminHandler(BaseHandler):
    """``/hub/first-admin#token=...``: make the first admin's account with the one-time
    token that ``dlhub up`` printed.

    The token comes in the link's fragment (never sent by the browser); the page's script
    puts it in the form, and only the POST checks it.
    """

    @property
    def token_file(self) -> Path | None:
        path = self.authenticator.first_admin_token_file
        return Path(path) if path else None

    def check_open(self) -> list[str]:
        names = self.authenticator.unclaimed_admins()
        if not names:
            raise web.HTTPError(
                404,
                "Every admin named in auth.admin_users has an account already: "
                "log in at /hub/login.",
            )
        return names

    def refuse_token(self):
        raise web.HTTPError(
            403,
            "This setup link is not valid: it was used already, or a later `dlhub up` made "
            "a new one. Use the link in the banner of the latest `dlhub up`.",
        )

    async def render_form(self, names, token, message="", status=200, name=""):
        self.set_status(status)
        html = await self.render_template(
            "dlhub-first-admin.html",
            names=names,
            chosen=name or names[0],
            token=token,
            message=message,
            minimum_password_length=self.authenticator.minimum_password_length,
        )
        self.finish(html)

    async def get(self):
        await self.render_form(self.check_open(), "")

    async def post(self):
        names = self.check_open()
        token = self.get_body_argument("token", "")
        name = self.authenticator.normalize_username(self.get_body_argument("username", ""))
        password = self.get_body_argument("password", "", strip=False)
        if not self.token_file or not first_admin.matches(self.token_file, token):
            self.refuse_token()
        if name not in names:
            message = "Choose one of the admin names listed (auth.admin_users)."
            return await self.render_form(names, token, message, 400)
        if password != self.get_body_argument("password_confirmation", "", strip=False):
            message = "The password and its confirmation differ: type them again."
            return await self.render_form(names, token, message, 400, name)
        if not first_admin.take(self.token_file, token):
            self.refuse_token()
        try:
            info = self.authenticator.create_user(name, password)
        except ValueError:  # e.g. a password bcrypt cannot hash
            info = None
        if info is None or not info.is_authorized:
            first_admin.put_back(self.token_file, token)
            message = (
                f"Choose another password: at least "
                f"{self.authenticator.minimum_password_length} characters, not a common one."
            )
            return await self.render_form(names, token, message, 400, name)
        self.log.info("first admin: the account %s was made with the setup link", name)
        html = await self.render_template("dlhub-first-admin-done.html", account=name)
        self.finish(html)


#: NativeAuthenticator's handlers and the ones that take their place.
REPLACEMENTS = {
    handlers.AuthorizationAreaHandler: AuthorizationAreaHandler,
    handlers.ToggleAuthorizationHandler: ApprovalHandler,
    handlers.DiscardHandler: DiscardHandler,
    handlers.ChangePasswordAdminHandler: ChangePasswordAdminHandler,
}
#: Routes of their own (under the hub's prefix).
ROUTES = [(rf"/{first_admin.PAGE}", FirstAdminHandler)]
