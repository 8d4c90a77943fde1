"""What sign-up and log-in accept, and how often: mixins of the authenticator and of
NativeAuthenticator's sign-up and login handlers (see :mod:`hub_config.auth`).

- usernames follow one rule (:mod:`hub_config.usernames`): the sign-up page states it,
  a name that breaks it is a ``400`` page before anything is looked up or stored, and
  the hub refuses such names everywhere (``validate_username``; the REST API through
  :mod:`hub_config.user_api`);
- passwords of any length work (:mod:`hub_config.passwords`): bcrypt gets at most 72
  bytes, longer passwords are reduced first; more than 1024 characters are refused at
  sign-up and never match at log-in;
- a log-in's bcrypt check (a quarter of a second at cost 12) runs in a pool of
  ``password_hash_threads`` threads, off the hub's event loop (bcrypt releases the GIL):
  every other request is served while a class logs in;
- lock-out: NativeAuthenticator locks an account after ``allowed_failed_logins``
  failures in a row for ``seconds_before_next_try``; here whoever gives the right
  password meanwhile is told it is locked and for how long (``429``, ``Retry-After``),
  and once the lock has run out the count starts again (NativeAuthenticator locked again
  at every further failure, so one guess a minute kept an account locked for good);
- throttle: ``login_throttle_failures`` failed log-ins from one address within
  ``login_throttle_seconds`` and that address gets ``429`` with ``Retry-After`` until the
  oldest of them is that old. A throttled address is refused before any password is
  checked, so its attempts do not add to any account's lock-out count;
- sign-up: ``signup_throttle_attempts`` sign-ups (any, not only refused ones) from one
  address within ``login_throttle_seconds`` and that address gets ``429`` with
  ``Retry-After``; while ``max_pending_signups`` accounts wait for approval, a sign-up
  that would wait too is refused (``503``) before anything is stored.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import bcrypt
from nativeauthenticator.orm import UserInfo
from tornado import web
from traitlets import Integer, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from . import passwords, throttle, usernames

#: Longest name quoted back in a page (a refused name may be any length).
SHOWN = 32


def _shown(name: str) -> str:
    return name if len(name) <= SHOWN else name[:SHOWN] + "…"


#: The last password check of this request: (stored hash, bcrypt secret, matched).
#: A context variable: each request's handler runs in a task of its own.
_checked: contextvars.ContextVar[tuple[bytes, str, bool] | None] = contextvars.ContextVar(
    "dlhub_password_checked", default=None
)


class CredentialRules(LoggingConfigurable):
    """The authenticator's side of the rules above.

    Needs from NativeAuthenticator after it in the bases: ``normalize_username``,
    ``validate_username``, ``get_user``, ``create_user``, ``change_password``,
    ``is_password_strong``, ``minimum_password_length``, ``open_signup``,
    ``get_authed_users``, ``login_attempts``, ``allowed_failed_logins``,
    ``seconds_before_next_try`` and ``add_login_attempt`` (NativeAuthenticator 1.3.0),
    and JupyterHub's ``db``. Gives the handler mixins below ``client_address``,
    ``login_throttle``, ``signup_throttle``, ``username_problem``,
    ``password_problem``, ``pending_full`` and ``locked_for``.

    Order of the bases: ``FirstAdminSetup, CredentialRules, NativeAuthenticator``
    (see :class:`hub_config.auth.DlhubAuthenticator`), before NativeAuthenticator, whose
    methods these override and call with ``super()``.
    """

    login_throttle_failures = Integer(
        10,
        help="""Failed log-ins from one address after which it must wait; 0: no limit.

        Counted within ``login_throttle_seconds`` (a sliding window). A throttled
        address gets ``429 Too Many Requests`` with ``Retry-After`` on the login page,
        without its password being checked. Set from ``auth.throttle_failed_logins``.
        """,
    ).tag(config=True)

    login_throttle_seconds = Integer(
        600,
        help="""The window, in seconds, in which ``login_throttle_failures`` are counted.

        Set from ``auth.throttle_seconds``.
        """,
    ).tag(config=True)

    signup_throttle_attempts = Integer(
        10,
        help="""Sign-ups from one address after which it must wait; 0: no limit.

        Every sign-up counts, accepted or refused, within ``login_throttle_seconds``
        (a sliding window). A throttled address gets ``429 Too Many Requests`` with
        ``Retry-After`` on the sign-up page, and nothing is stored. Set from
        ``auth.throttle_signups``.
        """,
    ).tag(config=True)

    max_pending_signups = Integer(
        500,
        help="""Sign-ups waiting for an admin's approval, at most; 0: no limit.

        While this many accounts wait, a sign-up that would wait too is refused
        (``503 Service Unavailable``) and nothing is stored; sign-ups approved at once
        (open sign-up, known users) still work. Set from ``auth.max_pending_signups``.
        """,
    ).tag(config=True)

    trusted_proxies = List(
        Unicode(),
        help="""Addresses or networks (``10.0.0.0/8``) of proxies in front of the hub's own.

        A log-in's address is the right-most ``X-Forwarded-For`` entry, the one the
        hub's proxy (configurable-http-proxy) adds; entries of these proxies are
        skipped from the right. Name the Ingress controller or load balancer that
        forwards to the proxy here, or every visitor shares its address. Set from
        ``auth.trusted_proxies``.
        """,
    ).tag(config=True)

    password_hash_threads = Integer(
        4,
        help="""Threads that check log-in passwords with bcrypt, off the hub's event loop.

        A bcrypt check takes about a quarter of a second of CPU (cost 12). In these
        threads (bcrypt releases Python's lock) the hub keeps serving every other
        request while many people log in at once; more threads than CPU cores add
        nothing. 0 checks on the event loop, as NativeAuthenticator does, which stalls
        the whole hub for each log-in (kept for comparison: bench/load measures both).
        Set from ``auth.password_hash_threads``.
        """,
    ).tag(config=True)

    @validate(
        "login_throttle_failures",
        "login_throttle_seconds",
        "signup_throttle_attempts",
        "max_pending_signups",
        "password_hash_threads",
    )
    def _valid_count(self, proposal):
        if proposal["value"] < 0:
            name = proposal["trait"].name
            raise TraitError(f"{name} must be 0 (no limit) or more, not {proposal['value']}.")
        return proposal["value"]

    @validate("trusted_proxies")
    def _valid_proxies(self, proposal):
        throttle.parse_networks(proposal["value"])
        return proposal["value"]

    @functools.cached_property
    def login_throttle(self) -> throttle.FailureWindow:
        return throttle.FailureWindow(self.login_throttle_failures, self.login_throttle_seconds)

    @functools.cached_property
    def signup_throttle(self) -> throttle.FailureWindow:
        # counts every sign-up of an address (FailureWindow.fail), not only refused ones
        return throttle.FailureWindow(self.signup_throttle_attempts, self.login_throttle_seconds)

    @functools.cached_property
    def _trusted_networks(self):
        return throttle.parse_networks(self.trusted_proxies)

    def client_address(self, request) -> str:
        """The address a request is counted under (see :func:`throttle.client_address`)."""
        forwarded = request.headers.get("X-Forwarded-For")
        return throttle.client_address(forwarded, request.remote_ip, self._trusted_networks)

    # --- usernames ----------------------------------------------------------------

    def username_problem(self, name: str) -> str | None:
        """Why ``name`` (as typed) cannot be a username, or None."""
        return usernames.problem(self.normalize_username(name))

    def validate_username(self, username):
        return usernames.problem(username) is None and super().validate_username(username)

    # --- passwords ----------------------------------------------------------------

    @functools.cached_property
    def _hash_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.password_hash_threads, thread_name_prefix="dlhub-bcrypt")

    def password_matches(self, info, password: str) -> bool:
        """Whether ``password`` is the one whose hash NativeAuthenticator stored in ``info``
        (the answer of this request's check in the pool when there was one)."""
        secret = passwords.bcrypt_secret(password)
        checked = _checked.get()
        if checked is not None and checked[0] == info.password and checked[1] == secret:
            return checked[2]
        return bcrypt.checkpw(secret.encode(), info.password)

    async def authenticate(self, handler, data):
        """NativeAuthenticator's log-in, with the password checked in the pool first.

        The account is read here, on the event loop (the database session is not
        thread-safe); only bcrypt goes to a thread. NativeAuthenticator's own checks
        (approval, lock-out, 2FA) then run as before and find the answer ready.
        """
        password = data.get("password")
        info = self.get_user(data.get("username", "")) if password is not None else None
        if info is not None and self.password_hash_threads:
            secret = passwords.bcrypt_secret(password)
            stored = info.password
            matched = await asyncio.wrap_future(
                self._hash_pool.submit(bcrypt.checkpw, secret.encode(), stored)
            )
            _checked.set((stored, secret, matched))
        return await super().authenticate(handler, data)

    def get_user(self, username):
        info = super().get_user(username)
        if info is not None:
            # NativeAuthenticator's check hands bcrypt the whole password, which bcrypt 5
            # refuses beyond 72 bytes; every caller (log-in, password change) gets ours
            info.is_valid_password = functools.partial(self.password_matches, info)
        return info

    def password_problem(self, password: str) -> str | None:
        """Why ``password`` cannot be chosen, or None (length and NativeAuthenticator's
        strength rules)."""
        problem = passwords.problem(password)
        if problem:
            return problem
        if not self.is_password_strong(password):
            return (
                f"Please choose a password of at least {self.minimum_password_length} "
                "characters that is not a common one."
            )
        return None

    def create_user(self, username, password, **kwargs):
        if self.password_problem(password):
            return None
        return super().create_user(username, passwords.bcrypt_secret(password), **kwargs)

    def change_password(self, username, new_password):
        if self.password_problem(new_password):
            return None
        return super().change_password(username, passwords.bcrypt_secret(new_password))

    # --- sign-ups waiting for approval ---------------------------------------------

    def pending_signups(self) -> int:
        """How many sign-ups wait for an admin's approval."""
        return self.db.query(UserInfo).filter(UserInfo.is_authorized.is_(False)).count()

    def pending_full(self, name: str) -> bool:
        """Whether a sign-up of ``name`` (as typed) would wait for approval while
        ``max_pending_signups`` already do."""
        if self.max_pending_signups <= 0 or self.open_signup:
            return False
        if self.normalize_username(name) in self.get_authed_users():
            return False  # approved at once
        return self.pending_signups() >= self.max_pending_signups

    # --- lock-out -----------------------------------------------------------------

    def lock_remaining(self, username: str) -> int:
        """Whole seconds the account ``username`` (normalised) stays locked; 0: not locked."""
        attempts = self.login_attempts.get(username)
        if not self.allowed_failed_logins or not attempts:
            return 0
        if attempts["count"] < self.allowed_failed_logins:
            return 0
        elapsed = (datetime.now() - attempts["time"]).total_seconds()
        return max(0, math.ceil(self.seconds_before_next_try - elapsed))

    def can_try_to_login_again(self, username):
        # NativeAuthenticator compares timedelta.seconds, which forgets whole days
        return self.lock_remaining(username) == 0

    def add_login_attempt(self, username):
        # once a lock has run out, counting starts again: NativeAuthenticator would lock
        # the account anew at every single failure, so one guess a minute kept it locked
        attempts = self.login_attempts.get(username)
        if attempts and attempts["count"] >= self.allowed_failed_logins > 0:
            if not self.lock_remaining(username):
                del self.login_attempts[username]
        super().add_login_attempt(username)

    def locked_for(self, username: str, password: str) -> int:
        """Seconds the account stays locked, told only to someone with its password."""
        name = self.normalize_username(username)
        remaining = self.lock_remaining(name)
        if not remaining:
            return 0
        info = self.get_user(name)
        if info is None or not info.is_valid_password(password):
            return 0
        return remaining


class LoginChecks:
    """Mixed into the login handler: throttle, username rule, the lock-out message.

    Needs: ``self.authenticator`` with :class:`CredentialRules` among its bases, and the
    login handler of NativeAuthenticator after it in the bases (its ``post``,
    ``login_user`` and ``_render``). Order of the bases: ``LoginChecks,
    nativeauthenticator.handlers.LoginHandler`` (see :class:`hub_config.auth.LoginHandler`).
    """

    async def _refuse(self, status: int, message: str, retry_after: int = 0):
        self.set_status(status)
        if retry_after:
            self.set_header("Retry-After", str(retry_after))
        self.finish(await self._render(login_error=message))

    async def post(self):
        auth = self.authenticator
        address = auth.client_address(self.request)
        wait = auth.login_throttle.retry_after(address)
        if wait:
            message = f"Too many failed log-ins from your address: try again in {wait} seconds."
            return await self._refuse(429, message, wait)
        name = self.get_body_argument("username", "", strip=False)
        problem = auth.username_problem(name)
        if problem is None and self.get_body_argument("password", None, strip=False) is None:
            problem = "Please type your password."
        if problem:
            auth.login_throttle.fail(address)
            return await self._refuse(400, problem)
        return await super().post()

    async def login_user(self, data=None):
        user = await super().login_user(data)
        if user is None:
            self.authenticator.login_throttle.fail(self.authenticator.client_address(self.request))
        return user

    # LoginHandler._render(login_error=None, username=None): private to JupyterHub and
    # overridden by NativeAuthenticator, both of which call it for the login page;
    # checked against JupyterHub 6.1.1 and NativeAuthenticator 1.3.0
    # (tests/unit/test_upstream_contract.py)
    def _render(self, login_error=None, username=None):
        if login_error and username and self.request.method == "POST":
            password = self.get_body_argument("password", "", strip=False)
            locked = self.authenticator.locked_for(username, password)
            if locked:
                self.set_status(429)
                self.set_header("Retry-After", str(locked))
                login_error = (
                    f"The account {_shown(username)} is locked after too many failed log-ins: "
                    f"try again in {locked} seconds."
                )
        return super()._render(login_error=login_error, username=username)


class SignUpChecks:
    """Mixed into the sign-up handler: the page states the username rule, and a name or
    password that breaks the rules is a 400 page before anything is stored.

    Needs: ``self.authenticator`` with :class:`CredentialRules` among its bases
    (NativeAuthenticator's ``enable_signup``, ``ask_email_on_signup``, ``allow_2fa``,
    ``recaptcha_key``, ``tos`` too), JupyterHub's ``render_template``, and
    NativeAuthenticator's sign-up handler after it (its ``post`` stores the account).
    Order of the bases: ``SignUpChecks, FirstAdminGuard,
    nativeauthenticator.handlers.SignUpHandler`` (see
    :class:`hub_config.auth.SignUpHandler`): the rules are checked first.
    """

    async def _page(self, message: str, alert: str, status: int = 200, retry_after: int = 0):
        auth = self.authenticator
        if not auth.enable_signup:
            raise web.HTTPError(404)
        self.set_status(status)
        if retry_after:
            self.set_header("Retry-After", str(retry_after))
        html = await self.render_template(
            "signup.html",
            ask_email=auth.ask_email_on_signup,
            two_factor_auth=auth.allow_2fa,
            recaptcha_key=auth.recaptcha_key,
            tos=auth.tos,
            result_message=message,
            alert=alert,
        )
        self.finish(html)

    async def get(self):
        await self._page(f"A username has {usernames.RULE}.", "alert-info")

    async def post(self):
        auth = self.authenticator
        if not auth.enable_signup:
            raise web.HTTPError(404)
        address = auth.client_address(self.request)
        wait = auth.signup_throttle.retry_after(address)
        if wait:
            message = f"Too many sign-ups from your address: try again in {wait} seconds."
            return await self._page(message, "alert-danger", 429, wait)
        auth.signup_throttle.fail(address)  # every sign-up counts
        name = self.get_body_argument("username", "", strip=False)
        problem = auth.username_problem(name)
        password = self.get_body_argument("signup_password", "", strip=False)
        if problem is None and password == self.get_body_argument(
            "signup_password_confirmation", "", strip=False
        ):
            problem = auth.password_problem(password)
        if problem:
            return await self._page(problem, "alert-danger", 400)
        if auth.pending_full(name):
            message = (
                "Too many accounts are waiting for an admin's approval: please ask an admin "
                "to approve or discard some, then sign up again."
            )
            return await self._page(message, "alert-danger", 503)
        return await super().post()
