"""OpenID Connect on Kubernetes: the platform tree's auth.oidc keys go through the chart as
they are, the client secret comes from a Secret of the operator's (hub.oidcClientSecret),
mounted into the hub and named as auth.oidc.client_secret_file; it is never in the rendered
manifests, and the hub's auth state key is the chart's generated crypt key."""

from __future__ import annotations

import json

import pytest
from chartkit import helm_template, hub_pod, hub_volume, platform_config, rendered

from hub_config.config import validate

pytestmark = pytest.mark.k8s

OIDC = {
    "issuer": "https://sso.example.org/realms/lab",
    "client_id": "dlhub",
    "scopes": ["openid", "profile", "groups"],
    "allowed_groups": ["ml-team"],
    "admin_groups": ["hub-admins"],
    "login_service": "Lab SSO",
}


def render(helm, secret: bool = True, **oidc_extra):
    values = [f"platform.auth={json.dumps({'type': 'oidc', 'oidc': {**OIDC, **oidc_extra}})}"]
    if secret:
        values.append('hub.oidcClientSecret={"secretName": "dlhub-oidc", "key": "secret"}')
    return helm_template(helm, set_json=tuple(values))


def test_the_client_secret_comes_from_the_secret_as_a_file(helm):
    docs = rendered(render(helm))
    volume, mount = hub_volume(docs, "oidc-client-secret")
    assert volume["secret"] == {
        "secretName": "dlhub-oidc",
        "defaultMode": 0o440,
        "items": [{"key": "secret", "path": "client-secret"}],
    }
    assert mount == {
        "name": "oidc-client-secret",
        "mountPath": "/etc/dlhub/oidc",
        "readOnly": True,
    }
    # the auth state's key: the chart's generated Secret, not a file in the data dir
    crypt = next(
        e for e in hub_pod(docs)["containers"][0]["env"] if e["name"] == "JUPYTERHUB_CRYPT_KEY"
    )
    assert crypt["valueFrom"]["secretKeyRef"]["key"] == "crypt-key"
    platform = platform_config(docs)
    oidc = platform["auth"]["oidc"]
    assert oidc == {**OIDC, "client_secret_file": "/etc/dlhub/oidc/client-secret"}
    # the hub's own loader takes what the chart wrote
    cfg = validate(platform)
    assert cfg["auth"]["type"] == "oidc" and cfg["auth"]["oidc"]["pkce"] == "auto"


def test_a_secret_in_the_values_and_in_a_secret_is_refused(helm):
    done = render(helm, client_secret="s3cret")
    assert done.returncode != 0
    assert "keep the client secret in the Secret only" in done.stderr


def test_the_chart_schema_refuses_bad_auth_keys(helm):
    done = render(helm, pkce="sometimes")
    assert done.returncode != 0 and "pkce" in done.stderr
    done = helm_template(helm, set_json=('platform.auth={"type": "saml"}',))
    assert done.returncode != 0 and "type" in done.stderr


def test_no_secret_no_mount(helm):
    done = render(helm, secret=False, client_secret_file="/run/secrets/oidc")
    hub = hub_pod(rendered(done))
    assert all(v["name"] != "oidc-client-secret" for v in hub["volumes"])
