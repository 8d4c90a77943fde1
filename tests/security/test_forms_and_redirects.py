"""Checklist item 5: every state-changing form needs its XSRF token; no open redirect.

XSRF: bob's browser session (cookies only) sends each state-changing request of the hub
without the XSRF token — the spawn form, the token page's create and revoke, change
password, sign-up, log-in, and the REST API calls the admin panel makes — and is refused
with 403, nothing changed; so are the GPU scheduler's page forms (wait, reclaim). (Approve
and discard: tests/security/test_account_forms.py.) Log-out is a GET in JupyterHub: it ends
that browser's session and nothing else.

Redirects: after log-in (and for a user already logged in) ``next`` naming another site,
plainly or encoded, never sends the browser off the hub.

The hub's pages are the same on every backend: one local hub.
"""

from __future__ import annotations

from urllib.parse import quote, urlparse

import pytest
import requests

from hubtest import free_port, new_password, token_api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(hubs):
    config = {
        "gpus": {
            "enabled": True,
            "devices": [{"uuid": "GPU-0", "model": "A100"}],
            "port": free_port(),
        },
        "profiles": [{"name": "cpu", "default": True}, {"name": "small", "mem_limit": "1G"}],
    }
    return hubs.start("local", config, name="forms")


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def admin_token(admin):
    return admin.new_token("forms")


@pytest.fixture(scope="module")
def bob_password():
    return new_password()


@pytest.fixture(scope="module")
def bob(hub, admin, bob_password):
    s = hub.session()
    s.signup("bob", bob_password)
    admin.approve("bob")
    s.login("bob", bob_password)
    return s


def without_xsrf(session, method, path, **kw) -> requests.Response:
    """A request with the session's cookies (the _xsrf cookie included) but no token in the
    form or header, as a page on another site would send it."""
    return session.request(method, session.url(path), allow_redirects=False, **kw)


def test_spawn_form_needs_xsrf(hub, bob, admin_token):
    r = without_xsrf(bob, "POST", "/hub/spawn", data={"profile": "small"})
    assert r.status_code == 403
    model = token_api(hub.url, admin_token, "GET", "/hub/api/users/bob").json()
    assert model["servers"] == {}


def test_token_page_needs_xsrf(hub, bob, admin_token):
    r = without_xsrf(bob, "POST", "/hub/api/users/bob/tokens", json={"note": "csrf"})
    assert r.status_code == 403
    tokens = token_api(hub.url, admin_token, "GET", "/hub/api/users/bob/tokens").json()
    assert [t for t in tokens["api_tokens"] if t["note"] == "csrf"] == []
    # revoking a token the same way
    token = bob.new_token("keep")
    token_id = next(
        t["id"]
        for t in token_api(hub.url, token, "GET", "/hub/api/users/bob/tokens").json()["api_tokens"]
        if t["note"] == "keep"
    )
    r = without_xsrf(bob, "DELETE", f"/hub/api/users/bob/tokens/{token_id}")
    assert r.status_code == 403
    assert token_api(hub.url, token, "GET", "/hub/api/user").status_code == 200


def test_rest_api_with_cookies_needs_xsrf(hub, bob, admin, admin_token):
    """What the admin panel and JupyterHub's pages do through the REST API."""
    r = without_xsrf(bob, "POST", "/hub/api/users/bob/server", json={})
    assert r.status_code == 403
    r = without_xsrf(admin, "POST", "/hub/api/users/eve", json={})
    assert r.status_code == 403
    r = without_xsrf(admin, "PATCH", "/hub/api/users/bob", json={"admin": True})
    assert r.status_code == 403
    r = without_xsrf(admin, "DELETE", "/hub/api/users/bob")
    assert r.status_code == 403
    users = {u["name"]: u for u in token_api(hub.url, admin_token, "GET", "/hub/api/users").json()}
    assert "eve" not in users and users["bob"]["admin"] is False
    assert users["bob"]["servers"] == {}
    # the control: the same call with the header goes through
    assert admin.api("POST", "/users/eve", json={}).status_code == 201


def test_change_password_needs_xsrf(hub, bob, bob_password):
    r = without_xsrf(
        bob,
        "POST",
        "/hub/change-password",
        data={
            "old_password": bob_password,
            "new_password": "pw-csrf-chosen-1",
            "new_password_confirmation": "pw-csrf-chosen-1",
        },
    )
    assert r.status_code == 403
    # bob's password is still his
    fresh = hub.session()
    fresh.login("bob", bob_password)


def test_sign_up_and_log_in_need_xsrf(hub, bob_password):
    anonymous = hub.session()
    anonymous.get(anonymous.url("/hub/login"))
    r = without_xsrf(
        anonymous,
        "POST",
        "/hub/signup",
        data={
            "username": "planted",
            "signup_password": "pw-planted-123",
            "signup_password_confirmation": "pw-planted-123",
        },
    )
    assert r.status_code == 403
    # a page on another site cannot log the visitor in as someone else (log-in CSRF)
    r = without_xsrf(
        anonymous, "POST", "/hub/login", data={"username": "bob", "password": bob_password}
    )
    assert r.status_code == 403
    assert not any(c.name.startswith("jupyterhub-session") for c in anonymous.cookies)
    assert "jupyterhub-hub-login" not in {c.name for c in anonymous.cookies}


def test_gpu_scheduler_pages_need_their_xsrf(hub, bob):
    """The scheduler's own pages (logged in through the hub): a form post without the
    page's xsrf token is not taken as bob's (the control: with it, it is)."""
    pages = "/services/gpu-scheduler/"
    r = bob.get(bob.url(pages + "wait/"))
    assert r.status_code == 200 and r.url.endswith(pages + "wait/"), r.url
    spawn_page = "/hub/spawn-pending/bob"
    r = without_xsrf(bob, "POST", pages + "wait/", data={"action": "cpu"})
    assert r.status_code in (302, 403), r.status_code
    assert not r.headers.get("Location", "").startswith(spawn_page)
    r = without_xsrf(bob, "POST", pages + "leases/any/reclaim")
    assert r.status_code in (302, 403) and pages not in r.headers.get("Location", ""), r.headers
    # the token the scheduler's pages set for this browser (their forms carry it)
    xsrf = next(c.value for c in bob.cookies if c.name == "_xsrf" and c.path == pages)
    r = without_xsrf(bob, "POST", pages + "wait/", data={"action": "cpu", "_xsrf": xsrf})
    assert r.status_code == 302 and r.headers["Location"].startswith(spawn_page)


def test_log_out_is_a_get_that_only_ends_the_session(hub, admin, bob_password, admin_token):
    """JupyterHub's log-out is a GET link: it ends that browser's session; the user's
    servers, tokens and account stay."""
    s = hub.session()
    s.login("bob", bob_password)
    token = s.new_token("survives log-out")
    r = s.get(s.url("/hub/logout"), allow_redirects=False)
    assert r.status_code == 302
    assert s.get(s.url("/hub/api/user"), headers={"X-XSRFToken": s.xsrf()}).status_code == 403
    assert token_api(hub.url, token, "GET", "/hub/api/user").status_code == 200
    model = token_api(hub.url, admin_token, "GET", "/hub/api/users/bob").json()
    assert model["admin"] is False and model["name"] == "bob"


#: values of ``next`` that try to leave the hub (as sent, i.e. already URL-encoded)
EVIL_NEXT = [
    "//evil.example",
    "https://evil.example",
    "http:evil.example",
    "https:/evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "///evil.example",
    "/%5Cevil.example",
    "%2F%2Fevil.example",
    "%2F%5Cevil.example",
    "%252F%252Fevil.example",
    "/%2F/evil.example",
    "/%09/evil.example",
    " //evil.example",
    "//evil.example/hub/",
    "https://evil.example/hub/home",
    "//127.0.0.1@evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
]


def stays_on_the_hub(location: str, hub) -> bool:
    """A browser given this Location stays on the hub (it treats ``\\`` as ``/``)."""
    normalised = location.replace("\\", "/").strip()
    parsed = urlparse(normalised)
    if parsed.scheme or parsed.netloc:
        return f"{parsed.scheme}://{parsed.netloc}" == hub.url
    return normalised.startswith("/") and not normalised.startswith("//")


def send_next(value: str) -> str:
    """``value`` in a query: sent as given where it is percent-encoded already."""
    return value if "%" in value else quote(value, safe="")


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_no_open_redirect_after_log_in(hub, bob_password, target):
    s = hub.session()
    s.get(s.url("/hub/login?next=" + send_next(target)))
    r = s.post(
        s.url("/hub/login?next=" + send_next(target)),
        data={"username": "bob", "password": bob_password, "_xsrf": s.xsrf()},
        allow_redirects=False,
    )
    assert r.status_code == 302, r.status_code
    assert stays_on_the_hub(r.headers["Location"], hub), r.headers["Location"]


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_no_open_redirect_when_logged_in(hub, bob, target):
    r = bob.get(bob.url("/hub/login?next=" + send_next(target)), allow_redirects=False)
    assert r.status_code == 302, r.status_code
    assert stays_on_the_hub(r.headers["Location"], hub), r.headers["Location"]


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "%2F%2Fevil.example"])
def test_no_open_redirect_through_user_redirect(hub, bob, target):
    r = bob.get(bob.url("/hub/user-redirect/" + target), allow_redirects=False)
    assert r.status_code in (302, 404), r.status_code
    if r.status_code == 302:
        assert stays_on_the_hub(r.headers["Location"], hub), r.headers["Location"]
