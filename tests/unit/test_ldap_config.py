"""auth.ldap: the rules the schema cannot say, the traits it maps to and the start-up
check (hub_config/ldap.py). The real directory: tests/integration/test_ldap.py."""

from __future__ import annotations

import ssl

import pytest

from hub_config import ldap, mapping
from hub_config.config import ConfigError, validate

GOOD = {
    "server_address": "ldap.example.org",
    "bind_dn_template": ["uid={username},ou=people,dc=example,dc=org"],
    "group_search_base": "ou=groups,dc=example,dc=org",
    "allowed_groups": ["ml-team"],
}


def auth(**ldap_keys) -> dict:
    return {"type": "ldap", "admin_users": [], "ldap": {**GOOD, **ldap_keys}}


@pytest.mark.parametrize(
    "change, key, problem",
    [
        ({"server_address": None}, "auth.ldap.server_address", "required with auth.type: ldap"),
        ({"bind_dn_template": []}, "auth.ldap.bind_dn_template", "set either bind_dn_template"),
        ({"lookup_dn": True}, "auth.ldap.bind_dn_template", "one of them"),
        ({"bind_dn_template": ["ou=people"]}, "auth.ldap.bind_dn_template", "no {username}"),
        (
            {"bind_dn_template": [], "lookup_dn": True},
            "auth.ldap.user_search_base",
            "needed with lookup_dn",
        ),
        (
            {"lookup_dn_search_password": "x"},
            "auth.ldap.lookup_dn_search_user",
            "needed with its password",
        ),
        (
            {
                "lookup_dn_search_user": "cn=r",
                "lookup_dn_search_password": "x",
                "lookup_dn_search_password_file": "/run/secret",
            },
            "auth.ldap.lookup_dn_search_password",
            "set one of",
        ),
        ({"group_search_base": None}, "auth.ldap.group_search_base", "needed with"),
        ({"allowed_groups": []}, "auth.ldap.allowed_groups", "nobody could log in"),
        ({"tls": "ssl"}, "auth.ldap.tls", "must be one of starttls, ldaps, none"),
        ({"ca_file": "ca.pem"}, "auth.ldap.ca_file", "absolute path"),
        ({"server_port": 0}, "auth.ldap.server_port", "at least 1"),
    ],
)
def test_bad_ldap_config_names_the_key(change, key, problem):
    with pytest.raises(ConfigError) as e:
        validate({"auth": auth(**change)})
    assert e.value.key == key
    assert problem in e.value.problem


def test_ldap_keys_are_ignored_by_other_types():
    validate({"auth": {"type": "native", "ldap": {"server_address": "x"}}})


def test_the_table_maps_auth_ldap_onto_the_authenticator():
    cfg = validate(
        {
            "auth": auth(
                ca_file="/etc/ssl/dir-ca.pem",
                admin_groups=["lab-admins"],
                lookup_dn_search_user="cn=reader,dc=example,dc=org",
                lookup_dn_search_password_file="/run/secrets/bind",
            )
        }
    )
    t = mapping.auth_traits(cfg, None)
    assert t["JupyterHub"] == {
        "authenticator_class": "hub_config.ldap_auth.DirectoryAuthenticator"
    }
    section = t["DirectoryAuthenticator"]
    assert section["tls_strategy"] == "before_bind"
    assert section["tls_kwargs"] == {
        "validate": ssl.CERT_REQUIRED,
        "ca_certs_file": "/etc/ssl/dir-ca.pem",
    }
    assert section["manage_groups"] is True
    assert section["allow_existing_users"] is False
    assert section["directory_allowed_groups"] == {"ml-team"}
    assert section["directory_admin_groups"] == {"lab-admins"}
    assert section["refresh_pre_spawn"] is True
    assert section["lookup_dn_search_password_file"] == "/run/secrets/bind"
    assert "lookup_dn_search_password" not in section
    assert "server_port" not in section


@pytest.mark.parametrize(
    "tls, strategy, verified",
    [
        ("starttls", "before_bind", True),
        ("ldaps", "on_connect", True),
        ("none", "insecure", False),
    ],
)
def test_tls_modes(tls, strategy, verified):
    section = ldap.ldap_traits(validate({"auth": auth(tls=tls)})["auth"])["DirectoryAuthenticator"]
    assert section["tls_strategy"] == strategy
    assert ("validate" in section["tls_kwargs"]) is verified


def test_the_authenticator_takes_the_traits():
    from traitlets.config import Config

    from hub_config.ldap_auth import DirectoryAuthenticator

    c = Config()
    for name, values in ldap.ldap_traits(validate({"auth": auth()})["auth"]).items():
        for key, value in values.items():
            setattr(c[name], key, value)
    a = DirectoryAuthenticator(config=c)
    assert a.bind_dn_template == GOOD["bind_dn_template"]
    assert a.group_search_base == GOOD["group_search_base"]
    assert a.manage_groups is True


def test_startup_problems_name_the_key(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cases = [
        ({"lookup_dn_search_password_file": str(tmp_path / "nope")}, "cannot read"),
        ({"lookup_dn_search_password_file": str(empty)}, "is empty"),
        ({"ca_file": str(tmp_path / "nope.pem")}, "auth.ldap.ca_file: cannot read"),
        ({"ca_file": str(empty)}, "auth.ldap.ca_file:"),
    ]
    for change, problem in cases:
        keys = (
            {"lookup_dn_search_user": "cn=r"} if "lookup_dn_search_password_file" in change else {}
        )
        cfg = validate({"auth": auth(**change, **keys)})
        found = ldap.startup_problem(cfg["auth"])
        assert found and problem in found, (change, found)
    assert ldap.startup_problem(validate({"auth": auth()})["auth"]) is None


def test_ldapauthenticator_calls_the_hook_groups_ride_on():
    """DirectoryAuthenticator reads the groups in ``get_user_attributes``, which
    ldapauthenticator 2.0.2 calls once, with the connection bound as the user, at the end
    of ``authenticate``; an upgrade that changes this fails here."""
    import importlib.metadata
    import inspect

    from ldapauthenticator import LDAPAuthenticator

    assert importlib.metadata.version("jupyterhub-ldapauthenticator") == "2.0.2"
    source = inspect.getsource(LDAPAuthenticator.authenticate)
    assert source.count("self.get_user_attributes(conn, userdn)") == 1
    assert '"user_attributes": user_attributes' in source
