"""Log-in with an OpenID Connect provider: oauthenticator's ``GenericOAuthenticator``, thinly.

What this module adds to ``GenericOAuthenticator`` (oauthenticator 17.4):

- **issuer discovery**: the provider's endpoints come from
  ``<issuer>/.well-known/openid-configuration``, read once, at the first log-in (so the
  hub starts while the provider is still starting). The document must name the same
  issuer (OpenID Connect Discovery 1.0, section 4.3). PKCE (S256) is used when the
  document lists it (``pkce: auto``), always, or never.
- **the client secret from a file** (``client_secret_file``), as a Kubernetes Secret is
  mounted.
- a clear page when the provider cannot be reached (503, naming the provider), instead
  of a 500.

Everything else is oauthenticator's: the authorization-code flow, the ``state`` check,
``allowed_users``/``allowed_groups``/``admin_groups``, group sync (``manage_groups``:
the user's hub groups are set to the ``groups_claim`` of the userinfo at every log-in and
every refresh), and the refresh of the stored tokens (``enable_auth_state``,
``refresh_pre_spawn``, ``auth_refresh_age``).

:func:`oidc_traits` is the pure table from the platform config's ``auth`` section to
traits; :func:`startup_problem` is what ``hub.configure`` checks before the hub starts.
"""

from __future__ import annotations

import re
from pathlib import Path

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler
from tornado import web
from traitlets import Enum, Unicode, default

from . import directory, usernames

#: The class ``JupyterHub.authenticator_class`` names for ``auth.type: oidc``.
AUTHENTICATOR_CLASS = "hub_config.oidc.OIDCAuthenticator"

#: Where the discovery document is, under the issuer.
WELL_KNOWN = "/.well-known/openid-configuration"

#: The part of the userinfo oauthenticator keeps in the auth state (``user_auth_state_key``).
USER_KEY = "oauth_user"


def discovery_url(issuer: str) -> str:
    """The discovery document's URL of ``issuer`` (a trailing ``/`` is not doubled)."""
    return issuer.rstrip("/") + WELL_KNOWN


def endpoints(issuer: str, document: dict) -> dict:
    """The endpoints of a discovery document, checked: ``ValueError`` says what is wrong.

    Returns ``authorize_url``, ``token_url``, ``userdata_url`` and ``pkce_s256`` (whether
    the provider lists the S256 code challenge method)."""
    named = document.get("issuer")
    if named != issuer and named != issuer.rstrip("/"):
        raise ValueError(f"its discovery document names another issuer ({named!r})")
    out = {}
    for key, field in (
        ("authorize_url", "authorization_endpoint"),
        ("token_url", "token_endpoint"),
        ("userdata_url", "userinfo_endpoint"),
    ):
        value = document.get(field)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise ValueError(f"its discovery document has no {field}")
        out[key] = value
    out["pkce_s256"] = "S256" in (document.get("code_challenge_methods_supported") or [])
    return out


#: Most groups one account may bring from the provider, and the longest group name (the
#: length of JupyterHub's group name column): more is refused at log-in, never stored.
MAX_GROUPS = 500
MAX_GROUP_NAME = 255
#: what no group name holds (control characters)
_GROUP_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OIDCLoginHandler(OAuthLoginHandler):
    """oauthenticator's redirect to the provider, once the provider's endpoints are known."""

    async def get(self):
        await self.authenticator.discover()
        return super().get()

    def _get_next_url(self):
        # oauthenticator keeps only the path of ``next``; a control character in it (a tab,
        # which browsers drop) would make the redirect after the callback a 500
        next_url = super()._get_next_url()
        if next_url and _GROUP_CONTROL.search(next_url):
            return None
        return next_url


#: The page of a callback whose ``state`` is not the one this browser was sent off with.
STATE_REFUSED = (
    "This sign-in was not started from this browser, or it has expired, so it was refused. "
    "Start again from the hub's log-in page."
)


class OIDCCallbackHandler(OAuthCallbackHandler):
    """oauthenticator's callback, with a page that says what to do when the ``state`` does
    not match (a forged or replayed callback, or an old tab)."""

    def check_state(self):
        try:
            super().check_state()
        except web.HTTPError as e:
            if e.status_code != 400:
                raise
            self.log.warning("OpenID Connect callback refused: %s", e.log_message)
            raise web.HTTPError(400, STATE_REFUSED) from None


class OIDCAuthenticator(GenericOAuthenticator):
    """``GenericOAuthenticator`` that finds its endpoints from the issuer.

    Needs ``issuer``; ``authorize_url``, ``token_url`` and ``userdata_url`` are set from
    the discovery document at the first log-in (or refresh), and ``enable_pkce`` too when
    ``pkce`` is ``auto``.
    """

    login_handler = OIDCLoginHandler
    callback_handler = OIDCCallbackHandler

    issuer = Unicode(
        "",
        help="""The provider's issuer URL, e.g. ``https://sso.example.org/realms/lab``.

        The endpoints are read from ``<issuer>/.well-known/openid-configuration`` once,
        at the first log-in; the document must name this issuer. Set from the platform
        config key ``auth.oidc.issuer``.
        """,
    ).tag(config=True)

    pkce = Enum(
        ["auto", "always", "never"],
        default_value="auto",
        help="""Whether to send a PKCE (S256) code challenge.

        ``auto``: when the discovery document lists S256 among
        ``code_challenge_methods_supported``; ``always``; ``never``. Set from
        ``auth.oidc.pkce``.
        """,
    ).tag(config=True)

    client_secret_file = Unicode(
        "",
        help="""A file holding the client secret (white space around it is ignored).

        Used when ``client_secret`` is not set; read when the secret is first needed.
        Set from ``auth.oidc.client_secret_file``.
        """,
    ).tag(config=True)

    ca_file = Unicode(
        "",
        help="""A PEM file of the authority that signed the provider's certificate.

        Empty: the system's trust store. Set from ``auth.oidc.ca_file``.
        """,
    ).tag(config=True)

    _endpoints: dict | None = None

    @default("client_secret")
    def _client_secret_from_file(self):
        if self.client_secret_file:
            return Path(self.client_secret_file).read_text().strip()
        return super()._client_secret_default()

    @default("http_request_kwargs")
    def _request_kwargs_ca(self):
        return {"ca_certs": self.ca_file} if self.ca_file else {}

    async def discover(self) -> dict:
        """Read the provider's endpoints once; a 503 page names the provider when it
        cannot be read."""
        if self._endpoints is not None:
            return self._endpoints
        url = discovery_url(self.issuer)
        try:
            document = await self.httpfetch(
                url, "Fetching the OpenID Connect discovery document", method="GET"
            )
            found = endpoints(self.issuer, document if isinstance(document, dict) else {})
        except Exception as e:
            self.log.error("OpenID Connect discovery at %s failed: %s", url, e)
            raise web.HTTPError(
                503,
                f"The identity provider {self.issuer} cannot be reached or is misconfigured "
                "right now; try again in a minute, or tell an admin.",
            ) from None
        self.authorize_url = found["authorize_url"]
        self.token_url = found["token_url"]
        self.userdata_url = found["userdata_url"]
        if self.pkce != "auto":
            self.enable_pkce = self.pkce == "always"
        else:
            self.enable_pkce = found["pkce_s256"]
        self.log.info(
            "OpenID Connect provider %s: PKCE %s", self.issuer, "on" if self.enable_pkce else "off"
        )
        self._endpoints = found
        return found

    def normalize_username(self, username):
        """The provider's username as it is (``username_map`` applied), not lower-cased:
        ``Ana`` and ``ana``, or ``\u212aate`` (a Kelvin sign) and ``kate``, are different
        accounts at a provider and must not become one hub user; a name with upper-case
        or non-ASCII letters is refused by :meth:`validate_username`."""
        return self.username_map.get(username, username)

    def user_info_to_username(self, user_info):
        """The ``username_claim`` of the userinfo; a 403 page, not a 500, when the provider
        sent none (or not a string) for this account."""
        name = user_info.get(self.username_claim) if isinstance(user_info, dict) else None
        if not isinstance(name, str) or not name:
            self.log.warning(
                "OpenID Connect log-in refused: the userinfo has no %r string (its claims: %s)",
                self.username_claim,
                ", ".join(sorted(map(str, user_info or {}))[:50]),
            )
            raise web.HTTPError(
                403,
                f"The identity provider sent no username ({self.username_claim}) for this "
                "account, so the hub cannot log you in. Tell an admin (auth.oidc.username_claim).",
            )
        return name

    async def get_user_groups(self, auth_state: dict):
        """The groups of the ``groups_claim``, bounded: at most :data:`MAX_GROUPS` names of
        at most :data:`MAX_GROUP_NAME` characters, strings without control characters; more
        is a 403 page at log-in (and at the refresh before a start), nothing is stored. A
        single string is one group."""
        key = self.auth_state_groups_key
        value = auth_state
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return set()
        if isinstance(value, str):
            value = [value]
        problem = ""
        if not isinstance(value, list):
            problem = "is not a list of group names"
        elif not all(isinstance(g, str) and g for g in value):
            problem = "holds something that is not a group name"
        elif len(set(value)) > MAX_GROUPS:
            problem = f"lists {len(set(value))} groups; the hub takes at most {MAX_GROUPS}"
        elif any(len(g) > MAX_GROUP_NAME or _GROUP_CONTROL.search(g) for g in value):
            problem = (
                f"holds a group name longer than {MAX_GROUP_NAME} characters "
                "or with control characters"
            )
        if problem:
            self.log.warning("OpenID Connect groups refused: the groups claim %s", problem)
            raise web.HTTPError(
                403,
                f"The identity provider's groups for this account cannot be used: the claim "
                f"{problem}. Tell an admin.",
            )
        return set(value)

    def validate_username(self, username):
        """dlhub's one username rule (:mod:`hub_config.usernames`) for the names the
        provider's ``username_claim`` gives; a name outside it is refused at log-in (the
        hub's 403 page) and logged with the rule."""
        wrong = usernames.problem(username)
        if wrong:
            self.log.warning(
                "OpenID Connect user %r refused: %s (auth.oidc.username_claim is %r)",
                username,
                wrong,
                self.username_claim,
            )
            return False
        return super().validate_username(username)

    async def authenticate(self, handler, data=None, **kwargs):
        await self.discover()
        return await super().authenticate(handler, data, **kwargs)

    async def refresh_user(self, user, handler=None, **kwargs):
        """oauthenticator's refresh (the userinfo again, with the stored token), and the
        allow rules again: who left the allowed groups must log in anew, and is refused."""
        await self.discover()
        refreshed = await super().refresh_user(user, handler, **kwargs)
        if isinstance(refreshed, dict) and not await self.check_allowed(user.name, refreshed):
            self.log.info("%s is no longer allowed by the provider's groups", user.name)
            refreshed = False
        if refreshed is False and handler is not None:
            # "log in again" means it: the browser's next page is the log-in page
            handler.clear_login_cookie()
        return refreshed


def oidc_traits(auth: dict) -> dict[str, dict]:
    """The authenticator's sections for ``auth.type: oidc`` (``auth``: the platform
    config's validated ``auth`` section)."""
    oidc = auth["oidc"]
    section = {
        "issuer": oidc["issuer"],
        "pkce": oidc["pkce"],
        "client_id": oidc["client_id"],
        "scope": list(oidc["scopes"]),
        "username_claim": oidc["username_claim"],
        "login_service": oidc["login_service"],
        # groups from the claim are the user's hub groups, set at each log-in and refresh
        "manage_groups": True,
        "auth_state_groups_key": f"{USER_KEY}.{oidc['groups_claim']}",
        **directory.access_traits(oidc),
        # tokens kept (encrypted) so that each start and refresh asks the provider again
        "enable_auth_state": True,
        "refresh_pre_spawn": True,
        "auth_refresh_age": oidc["refresh_seconds"],
    }
    section.update(
        directory.given(
            oidc,
            "client_secret",
            "client_secret_file",
            "ca_file",
            oauth_callback_url="callback_url",
        )
    )
    return directory.authenticator_config(auth, AUTHENTICATOR_CLASS, "OIDCAuthenticator", section)


def startup_problem(auth: dict) -> str | None:
    """What stops the hub from starting with this ``auth`` section (one line naming the
    key), or None. Reads the client secret's file."""
    return directory.secret_file_problem(
        "auth.oidc.client_secret_file", auth["oidc"]["client_secret_file"]
    )
