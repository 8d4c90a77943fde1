"""The LDAP lookup account's password on Kubernetes: from a Secret of the operator's
(hub.ldapBindPassword), mounted into the hub and named in the platform config as
auth.ldap.lookup_dn_search_password_file; never in the rendered manifests."""

from __future__ import annotations

import json

import pytest
from chartkit import helm_template, hub_volume, platform_config, rendered

from hub_config.config import validate

pytestmark = pytest.mark.k8s

LDAP = {
    "server_address": "ldap.example.org",
    "bind_dn_template": ["uid={username},ou=people,dc=example,dc=org"],
    "lookup_dn_search_user": "cn=reader,dc=example,dc=org",
    "group_search_base": "ou=groups,dc=example,dc=org",
    "allowed_groups": ["ml-team"],
}


def render(helm, **ldap_extra):
    values = [
        f"platform.auth={json.dumps({'type': 'ldap', 'ldap': {**LDAP, **ldap_extra}})}",
        'hub.ldapBindPassword={"secretName": "dlhub-ldap", "key": "bind"}',
    ]
    return helm_template(helm, set_json=tuple(values))


def test_the_password_comes_from_the_secret_as_a_file(helm):
    docs = rendered(render(helm))
    volume, mount = hub_volume(docs, "ldap-bind-password")
    assert volume["secret"] == {
        "secretName": "dlhub-ldap",
        "defaultMode": 0o440,
        "items": [{"key": "bind", "path": "bind-password"}],
    }
    assert mount == {
        "name": "ldap-bind-password",
        "mountPath": "/etc/dlhub/ldap",
        "readOnly": True,
    }
    platform = platform_config(docs)
    ldap = platform["auth"]["ldap"]
    assert ldap["lookup_dn_search_password_file"] == "/etc/dlhub/ldap/bind-password"
    assert "lookup_dn_search_password" not in ldap
    # the hub's own loader takes what the chart wrote
    assert validate(platform)["auth"]["type"] == "ldap"


def test_a_password_in_the_values_as_well_is_refused(helm):
    done = render(helm, lookup_dn_search_password="in-the-values")
    assert done.returncode != 0
    assert "keep the password in the Secret only" in done.stderr


def test_without_the_secret_nothing_is_mounted(helm):
    done = helm_template(helm)
    assert done.returncode == 0, done.stderr
    assert "ldap-bind-password" not in done.stdout
