"""``auth.type``: the config keys of each kind of log-in, how they are checked, and the
traits each maps to (pure: no hub, no provider)."""

from __future__ import annotations

import pytest

from hub_config import hub, oidc
from hub_config.config import ConfigError, validate
from hub_config.mapping import AUTH_TABLES, auth_traits, traits_for

OIDC = {
    "type": "oidc",
    "oidc": {
        "issuer": "https://sso.example.org/realms/lab",
        "client_id": "dlhub",
        "client_secret_file": "/run/secrets/oidc-client-secret",
        "allowed_groups": ["ml-team", "students"],
        "admin_groups": ["hub-admins"],
    },
}


def error(auth: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate({"auth": auth})
    return info.value


def test_native_is_the_default_and_its_table_is_the_native_authenticator(tmp_path):
    cfg = validate({})
    assert cfg["auth"]["type"] == "native"
    traits = auth_traits(cfg, tmp_path)
    assert traits["JupyterHub"] == {"authenticator_class": "hub_config.auth.DlhubAuthenticator"}
    assert "DlhubAuthenticator" in traits and "OIDCAuthenticator" not in traits


def test_every_type_in_the_schema_has_a_table_or_says_it_is_not_available(tmp_path):
    from hub_config.config import schema

    kinds = schema()["properties"]["auth"]["properties"]["type"]["enum"]
    assert {"native", "oidc"} <= set(AUTH_TABLES) <= set(kinds)
    for kind in set(kinds) - set(AUTH_TABLES):
        cfg = validate({})
        cfg["auth"]["type"] = kind
        with pytest.raises(ValueError, match=f"auth.type '{kind}' is not available"):
            auth_traits(cfg, tmp_path)


def test_oidc_maps_onto_generic_oauthenticator_with_group_sync(tmp_path):
    cfg = validate({"auth": OIDC})
    traits = auth_traits(cfg, tmp_path)
    assert traits["JupyterHub"] == {"authenticator_class": oidc.AUTHENTICATOR_CLASS}
    section = traits["OIDCAuthenticator"]
    assert section == {
        "issuer": "https://sso.example.org/realms/lab",
        "pkce": "auto",
        "client_id": "dlhub",
        "client_secret_file": "/run/secrets/oidc-client-secret",
        "scope": ["openid", "profile", "email"],
        "username_claim": "preferred_username",
        "login_service": "OpenID Connect",
        "manage_groups": True,
        "auth_state_groups_key": "oauth_user.groups",
        "allowed_groups": {"ml-team", "students"},
        "admin_groups": {"hub-admins"},
        "allowed_users": set(),
        "allow_all": False,
        "allow_existing_users": False,
        "enable_auth_state": True,
        "refresh_pre_spawn": True,
        "auth_refresh_age": 300,
    }
    # no admin by name: the built-in [admin] is for native log-in only
    assert traits["Authenticator"] == {"admin_users": set()}
    # nothing of the native sign-up is configured
    assert "NativeAuthenticator" not in traits and "DlhubAuthenticator" not in traits


def test_the_whole_hub_gets_the_oidc_authenticator(tmp_path):
    cfg = validate({"auth": OIDC})
    traits = traits_for(cfg, tmp_path, python="python3", hub_prefix="/x")
    assert traits["JupyterHub"]["authenticator_class"] == oidc.AUTHENTICATOR_CLASS
    assert traits["OIDCAuthenticator"]["manage_groups"] is True


@pytest.mark.parametrize(
    "change, key, words",
    [
        ({"issuer": None}, "auth.oidc.issuer", "required with auth.type: oidc"),
        ({"client_id": None}, "auth.oidc.client_id", "required with auth.type: oidc"),
        ({"client_secret": "s3cret"}, "auth.oidc.client_secret", "exactly one"),
        ({"client_secret_file": None}, "auth.oidc.client_secret", "exactly one"),
        ({"issuer": "sso.example.org"}, "auth.oidc.issuer", "an http:// or https:// URL"),
        ({"client_secret_file": "secret.txt"}, "auth.oidc.client_secret_file", "absolute"),
        ({"pkce": "sometimes"}, "auth.oidc.pkce", "must be one of auto, always, never"),
        ({"scopes": ["open id"]}, "auth.oidc.scopes[0]", "a scope name"),
        ({"callback_url": "https://hub/x"}, "auth.oidc.callback_url", "/oauth_callback"),
        ({"refresh_seconds": 0}, "auth.oidc.refresh_seconds", "at least 1"),
        ({"groups": ["x"]}, "auth.oidc.groups", "unknown key"),
    ],
)
def test_bad_oidc_config_names_the_key(change, key, words):
    err = error({**OIDC, "oidc": {**OIDC["oidc"], **change}})
    assert err.key == key and words in err.problem


def test_nobody_allowed_in_is_refused():
    oidc_cfg = {k: v for k, v in OIDC["oidc"].items() if "groups" not in k}
    err = error({"type": "oidc", "admin_users": [], "oidc": oidc_cfg})
    assert err.key == "auth.oidc.allowed_groups" and "nobody could log in" in err.problem
    # allow_all, allowed_users, admin_groups or admin_users each let someone in
    for extra in ({"allow_all": True}, {"allowed_users": ["ann"]}, {"admin_groups": ["a"]}):
        validate({"auth": {"type": "oidc", "admin_users": [], "oidc": {**oidc_cfg, **extra}}})
    validate({"auth": {"type": "oidc", "admin_users": ["ada"], "oidc": oidc_cfg}})
    # the built-in admin_users ([admin]) does not count under a directory
    err = error({"type": "oidc", "oidc": oidc_cfg})
    assert err.key == "auth.oidc.allowed_groups" and "nobody could log in" in err.problem


LDAP = {
    "server_address": "ldap.example.org",
    "bind_dn_template": ["uid={username},ou=people,dc=example,dc=org"],
    "group_search_base": "ou=groups,dc=example,dc=org",
    "allowed_groups": ["ml-team"],
    "admin_groups": ["hub-admins"],
}


@pytest.mark.parametrize("kind", ["oidc", "ldap"])
def test_a_directory_user_named_admin_is_no_hub_admin_by_default(kind, tmp_path):
    """auth.admin_users defaults to [admin] for native log-in, where nobody can sign up
    as "admin"; under a directory whoever the provider calls "admin" would be a hub admin,
    so there admins come from admin_groups and the names the operator writes."""
    section = {"type": kind, kind: OIDC["oidc"] if kind == "oidc" else LDAP}
    cfg = validate({"auth": section})
    assert cfg["auth"]["admin_users"] == []
    assert auth_traits(cfg, tmp_path)["Authenticator"]["admin_users"] == set()
    written = validate({"auth": {**section, "admin_users": ["admin", "ada"]}})
    assert auth_traits(written, tmp_path)["Authenticator"]["admin_users"] == {"admin", "ada"}
    # native keeps its first admin
    assert validate({})["auth"]["admin_users"] == ["admin"]
    assert validate({"auth": {"type": "native"}})["auth"]["admin_users"] == ["admin"]


def test_bad_type_names_the_key():
    err = error({"type": "saml"})
    assert err.key == "auth.type" and "native, oidc, ldap" in err.problem


def test_discovery_document_is_checked():
    issuer = "https://sso.example.org/realms/lab"
    doc = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/auth",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/me",
        "code_challenge_methods_supported": ["S256"],
    }
    assert oidc.discovery_url(issuer + "/") == issuer + "/.well-known/openid-configuration"
    assert oidc.endpoints(issuer, doc) == {
        "authorize_url": issuer + "/auth",
        "token_url": issuer + "/token",
        "userdata_url": issuer + "/me",
        "pkce_s256": True,
    }
    assert not oidc.endpoints(issuer, {**doc, "code_challenge_methods_supported": []})["pkce_s256"]
    with pytest.raises(ValueError, match="another issuer"):
        oidc.endpoints(issuer, {**doc, "issuer": "https://evil.example.org"})
    with pytest.raises(ValueError, match="no userinfo_endpoint"):
        oidc.endpoints(issuer, {k: v for k, v in doc.items() if k != "userinfo_endpoint"})


def test_an_unreadable_secret_file_stops_start_up(tmp_path):
    gone = {**OIDC["oidc"], "client_secret_file": "/nonexistent"}
    cfg = validate({"auth": {**OIDC, "oidc": gone}})
    assert "auth.oidc.client_secret_file: cannot read /nonexistent" in oidc.startup_problem(
        cfg["auth"]
    )
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cfg["auth"]["oidc"]["client_secret_file"] = str(empty)
    assert oidc.startup_problem(cfg["auth"]).endswith("is empty")
    empty.write_text("s3cret\n")
    assert oidc.startup_problem(cfg["auth"]) is None


def test_the_authenticator_reads_its_secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text("  s3cret\n")
    auth = oidc.OIDCAuthenticator(client_secret_file=str(path))
    assert auth.client_secret == "s3cret"
    assert oidc.OIDCAuthenticator(client_secret="given").client_secret == "given"


def test_the_hub_keeps_a_crypt_key_for_the_auth_state(tmp_path):
    from traitlets.config import Config

    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    cfg = validate({"auth": {**OIDC, "oidc": {**OIDC["oidc"], "client_secret_file": str(secret)}}})
    traits = traits_for(cfg, tmp_path, python="python3", hub_prefix="/x")
    c = Config()
    assert hub.configure_auth(c, cfg, traits, tmp_path, {}) is None
    key_file = tmp_path / hub.CRYPT_KEY_FILE
    assert c.CryptKeeper["keys"] == [key_file.read_text()]
    assert len(bytes.fromhex(key_file.read_text())) == 32
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    # the native sign-up's page hooks are not installed
    assert "template_vars" not in c.JupyterHub
    # a key in the environment is JupyterHub's own; the hub leaves it to it
    c = Config()
    hub.configure_auth(c, cfg, traits, tmp_path, {"JUPYTERHUB_CRYPT_KEY": "x"})
    assert "keys" not in c.CryptKeeper
    # an unreadable secret stops start-up naming the key
    cfg["auth"]["oidc"]["client_secret_file"] = "/nonexistent"
    problem = hub.configure_auth(Config(), cfg, traits, tmp_path, {})
    assert problem.startswith("auth.oidc.client_secret_file: cannot read /nonexistent")


def test_native_keeps_its_page_hooks_and_no_crypt_key(tmp_path):
    from traitlets.config import Config

    cfg = validate({})
    traits = traits_for(cfg, tmp_path, python="python3", hub_prefix="/x")
    c = Config()
    assert hub.configure_auth(c, cfg, traits, tmp_path, {}) is None
    assert "dlhub_pending_signups" in c.JupyterHub.template_vars
    assert "keys" not in c.CryptKeeper
    assert not (tmp_path / hub.CRYPT_KEY_FILE).exists()


def test_jupyterhub_still_lacks_the_token_authenticated_default():
    """hub_config.auth_refresh gives BaseHandler ``_token_authenticated = False``; this
    fails once JupyterHub has it itself (then the fix can go)."""
    import subprocess
    import sys

    code = (
        "from jupyterhub.handlers.base import BaseHandler;"
        "print('_token_authenticated' in vars(BaseHandler))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from jupyterhub.handlers.base import BaseHandler

    from hub_config.auth_refresh import default_token_authenticated

    default_token_authenticated()
    assert BaseHandler._token_authenticated is False


def test_dlhub_up_admin_and_roster_import_under_a_directory(tmp_path, capsys, monkeypatch):
    import yaml

    from hub_config.__main__ import banner, main
    from hub_config.roster import refusal

    cfg = validate({"auth": OIDC})
    text = banner(cfg, tmp_path)
    assert "log in with OpenID Connect provider accounts" in text
    assert "/hub/authorize" not in text and "first-admin" not in text
    assert "/hub/authorize" in banner(validate({}), tmp_path)
    config = tmp_path / "dlhub.yaml"
    config.write_text(yaml.safe_dump({"auth": OIDC}))
    monkeypatch.chdir(tmp_path)
    # `dlhub admin --config` sets $DLHUB_CONFIG for what it runs: undone after this test,
    # or every later test that loads the default config would get this one
    monkeypatch.setenv("DLHUB_CONFIG", "")
    assert main(["admin", "admin", "--config", str(config)]) == 2
    assert "auth.type is oidc" in capsys.readouterr().err
    # the roster's import is refused before the file is read or the hub is asked
    roster = tmp_path / "roster.csv"
    roster.write_text("username,groups,admin\nann,ml-team,false\n")
    args = ["roster", "import", str(roster), "--config", str(config), "--hub", "http://0:1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == refusal("oidc") and "\n" not in err and err.endswith(").")  # one sentence
    assert refusal("native") is None and "LDAP directory" in refusal("ldap")


# --- what the provider sends: usernames, groups, the way back ---------------------------


def provider_auth() -> oidc.OIDCAuthenticator:
    traits = oidc.oidc_traits(validate({"auth": OIDC})["auth"])["OIDCAuthenticator"]
    keep = ("username_claim", "manage_groups", "auth_state_groups_key", "allowed_groups")
    return oidc.OIDCAuthenticator(**{k: traits[k] for k in keep})


@pytest.mark.parametrize("name", ["Ana", "ANA", "\u212aate", "ana\u0301", "\uff41na"])
def test_provider_names_are_not_folded_onto_another_user(name):
    """Two provider accounts never become one hub user: no lower-casing (``Ana`` is not
    ``ana``; the Kelvin sign would lower-case to ``k``), and such names are refused."""
    auth = provider_auth()
    assert auth.normalize_username(name) == name
    assert auth.validate_username(auth.normalize_username(name)) is False
    assert auth.validate_username(auth.normalize_username("ana")) is True


@pytest.mark.parametrize("info", [{}, {"preferred_username": ""}, {"preferred_username": 7}])
def test_a_userinfo_without_the_username_claim_is_a_403_not_a_500(info):
    from tornado import web

    with pytest.raises(web.HTTPError) as e:
        provider_auth().user_info_to_username({"sub": "x", **info})
    assert e.value.status_code == 403 and "preferred_username" in e.value.log_message
    assert provider_auth().user_info_to_username({"preferred_username": "ana"}) == "ana"


def groups_of(value):
    import asyncio

    return asyncio.run(provider_auth().get_user_groups({"oauth_user": {"groups": value}}))


def test_groups_from_the_claim_are_bounded_and_refused_clearly():
    from tornado import web

    assert groups_of(["ml-team", "students"]) == {"ml-team", "students"}
    assert groups_of("ml-team") == {"ml-team"}  # one group, not its letters
    assert groups_of(None) == set()
    assert groups_of(["g"] * 2 + [f"g{i}" for i in range(oidc.MAX_GROUPS - 1)])
    too_many = [f"g{i}" for i in range(5000)]
    for value, said in (
        (too_many, "lists 5000 groups"),
        (["ok", "x" * 10_000], "longer than 255"),
        (["a\nb"], "control characters"),
        ([{"name": "x"}], "not a group name"),
        ([""], "not a group name"),
        ({"a": 1}, "not a list"),
    ):
        with pytest.raises(web.HTTPError) as e:
            groups_of(value)
        assert e.value.status_code == 403 and said in e.value.log_message, value


@pytest.mark.parametrize(
    "given, kept",
    [
        ("/hub/spawn", "/hub/spawn"),
        ("//evil.example", "/"),
        ("https://evil.example/x", "/x"),
        ("/\\evil.example", "/%5Cevil.example"),
        ("/\t/evil.example", "/"),  # urlsplit drops tabs and newlines as browsers do
        ("/hub/\x01home", None),  # a control character would make the redirect a 500
        ("/%0d%0aSet-Cookie:x", "/%0d%0aSet-Cookie:x"),
    ],
)
def test_the_way_back_after_log_in_stays_on_the_hub(given, kept):
    handler = oidc.OIDCLoginHandler.__new__(oidc.OIDCLoginHandler)
    handler.get_argument = lambda name, default=None: given if name == "next" else default
    assert handler._get_next_url() == kept
