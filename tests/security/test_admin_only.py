"""Checklist item 2: admin actions are for admins only.

bob, an ordinary user, tries every admin endpoint of the hub's REST API (users, groups,
other users' tokens, shares, the proxy, shutdown, services) and of the GPU scheduler,
with his token and with his browser session; he tries to make himself an admin (PATCH,
a token with more scopes or the admin role) and the hub's admin pages. mallory, whose
sign-up nobody approved, tries to approve herself. Everything is refused and nothing
changes. The hub's REST API and pages are the same on every backend: one local hub.
"""

from __future__ import annotations

import pytest
import requests
from securitykit import create_users

from hubtest import free_port, new_password, token_api

pytestmark = pytest.mark.integration

SCHEDULER = "/services/gpu-scheduler/"


@pytest.fixture(scope="module")
def hub(hubs):
    config = {
        "gpus": {
            "enabled": True,
            "devices": [{"uuid": "GPU-0", "model": "A100"}],
            "port": free_port(),
        },
        "profiles": [{"name": "cpu", "default": True}, {"name": "gpu", "gpus": 1}],
    }
    return hubs.start("local", config, name="adminonly")


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def admin_token(admin):
    return admin.new_token("admin-only")


@pytest.fixture(scope="module")
def bob(hub, admin):
    return hub.approved_user(admin, "bob")


@pytest.fixture(scope="module")
def bob_token(bob):
    return bob.new_token("bob")


@pytest.fixture(scope="module")
def world(hub, admin_token, bob):
    """alice with a token, the group `staff` with alice in it."""
    tokens = create_users(hub, admin_token, "alice")
    assert token_api(hub.url, admin_token, "POST", "/hub/api/groups/staff").status_code == 201
    r = token_api(
        hub.url, admin_token, "POST", "/hub/api/groups/staff/users", json={"users": ["alice"]}
    )
    assert r.status_code == 200
    r = token_api(hub.url, admin_token, "GET", "/hub/api/users/alice/tokens")
    return {"alice_token": tokens["alice"], "alice_token_id": r.json()["api_tokens"][0]["id"]}


def admin_requests(world) -> list[tuple[str, str, dict | None]]:
    token_id = world["alice_token_id"]
    return [
        ("GET", "/users", None),
        ("POST", "/users", {"usernames": ["eve"]}),
        ("POST", "/users/eve", {}),
        ("GET", "/users/alice", None),
        ("PATCH", "/users/alice", {"admin": True}),
        ("PATCH", "/users/alice", {"name": "alice2"}),
        ("DELETE", "/users/alice", None),
        ("POST", "/users/alice/activity", {"last_activity": "2026-01-01T00:00:00Z"}),
        ("POST", "/users/alice/server", {}),
        ("DELETE", "/users/alice/server", None),
        ("GET", "/users/alice/tokens", None),
        ("POST", "/users/alice/tokens", {"note": "stolen"}),
        ("GET", f"/users/alice/tokens/{token_id}", None),
        ("DELETE", f"/users/alice/tokens/{token_id}", None),
        ("GET", "/groups", None),
        ("GET", "/groups/staff", None),
        ("POST", "/groups/rogue", {}),
        ("DELETE", "/groups/staff", None),
        ("POST", "/groups/staff/users", {"users": ["bob"]}),
        ("DELETE", "/groups/staff/users", {"users": ["alice"]}),
        ("PUT", "/groups/staff/properties", {"gpus": 8}),
        ("POST", "/shares/alice/", {"user": "bob"}),
        ("GET", "/shares/alice/", None),
        ("GET", "/proxy", None),
        ("POST", "/proxy", None),
        ("PATCH", "/proxy", {}),
        ("GET", "/services", None),
        ("GET", "/services/gpu-scheduler", None),
        ("POST", "/shutdown", None),
    ]


def test_admin_api_refuses_a_users_token(hub, bob_token, world, admin_token):
    for method, path, body in admin_requests(world):
        r = token_api(hub.url, bob_token, method, "/hub/api" + path, json=body)
        # 404 where the hub does not say whether the object exists
        assert r.status_code in (403, 404), (method, path, r.status_code, r.text[:200])
        assert r.headers["Content-Type"].startswith("application/json"), (method, path)
    assert_nothing_changed(hub, admin_token, world)


def test_admin_api_refuses_a_users_browser_session(hub, bob, world, admin_token):
    for method, path, body in admin_requests(world):
        r = bob.api(method, path, json=body)
        assert r.status_code in (403, 404), (method, path, r.status_code, r.text[:200])
    assert_nothing_changed(hub, admin_token, world)


def test_admins_own_token_is_the_control(hub, admin_token):
    """The requests refused to bob are the admin's to make."""
    assert token_api(hub.url, admin_token, "GET", "/hub/api/users").status_code == 200
    assert token_api(hub.url, admin_token, "GET", "/hub/api/proxy").status_code == 200
    assert token_api(hub.url, admin_token, "GET", SCHEDULER + "api/admin/state").status_code == 200


def test_no_self_promotion(hub, bob, bob_token, admin_token):
    for body in ({"admin": True}, {"admin": True, "name": "bob"}, {"roles": ["admin"]}):
        r = token_api(hub.url, bob_token, "PATCH", "/hub/api/users/bob", json=body)
        assert r.status_code in (400, 403), (body, r.status_code)
        assert bob.api("PATCH", "/users/bob", json=body).status_code in (400, 403), body
    # a token with more than he has: admin scopes or the admin role
    for body in (
        {"scopes": ["admin:users"]},
        {"scopes": ["admin-ui", "admin:servers"]},
        {"roles": ["admin"]},
        {"scopes": ["access:servers"]},
    ):
        r = token_api(hub.url, bob_token, "POST", "/hub/api/users/bob/tokens", json=body)
        assert r.status_code in (400, 403), (body, r.status_code, r.text)
    model = token_api(hub.url, admin_token, "GET", "/hub/api/users/bob").json()
    assert model["admin"] is False and model["roles"] == ["user"]
    me = token_api(hub.url, bob_token, "GET", "/hub/api/user").json()
    assert "admin:users" not in me["scopes"] and "admin-ui" not in me["scopes"]


@pytest.mark.parametrize("page", ["/hub/admin", "/hub/authorize", "/hub/change-password/alice"])
def test_admin_pages_refuse_a_user(hub, bob, world, page):
    r = bob.get(bob.url(page), allow_redirects=False)
    assert r.status_code in (403, 404), (page, r.status_code)


def test_scheduler_admin_api_refuses_a_user(hub, bob_token):
    for method, path in [
        ("GET", "api/admin/state"),
        ("POST", "api/admin/leases/any/reclaim"),
        ("PUT", "api/admin/quotas"),
        ("GET", "metrics"),
    ]:
        r = token_api(hub.url, bob_token, method, SCHEDULER + path, json={"staff": 9})
        assert r.status_code == 403, (method, path, r.status_code)
        assert "admin only" in r.json()["message"]


def test_no_self_approval(hub, bob, admin_token):
    """A pending sign-up can approve itself neither logged out nor through another
    ordinary user; it stays unable to log in."""
    password = new_password()
    mallory = hub.session()
    mallory.signup("mallory", password)
    # logged out: the approval link and its form post
    r = mallory.get(mallory.url("/hub/authorize/mallory"), allow_redirects=False)
    assert r.status_code in (302, 403) and "/hub/login" in r.headers.get("Location", "/hub/login")
    r = mallory.post_form("/hub/authorize/mallory", {}, allow_redirects=False)
    assert r.status_code in (302, 403)
    # bob, logged in but not an admin
    assert bob.get(bob.url("/hub/authorize/mallory")).status_code == 403
    assert bob.post_form("/hub/authorize/mallory", {}).status_code == 403
    # with no session cookie at all, and no XSRF token either
    r = requests.post(hub.url + "/hub/authorize/mallory", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 403)
    r = mallory.post_form(
        "/hub/login", {"username": "mallory", "password": password}, allow_redirects=False
    )
    assert r.status_code != 302
    assert not any(c.name.startswith("jupyterhub-session") for c in mallory.cookies)
    r = token_api(hub.url, admin_token, "GET", "/hub/api/users/mallory")
    assert r.status_code == 404  # never logged in: no hub user either


def assert_nothing_changed(hub, admin_token, world):
    def get(path):
        return token_api(hub.url, admin_token, "GET", "/hub/api" + path)

    users = {u["name"]: u for u in get("/users").json()}
    assert "eve" not in users and "alice2" not in users
    assert users["alice"]["admin"] is False and users["bob"]["admin"] is False
    assert users["alice"]["servers"] == {}
    assert get("/groups/staff").json()["users"] == ["alice"]
    assert get("/groups/rogue").status_code == 404
    tokens = get("/users/alice/tokens").json()["api_tokens"]
    assert [t["id"] for t in tokens] == [world["alice_token_id"]]
    assert get("/groups/staff").json()["properties"] == {}
    r = token_api(hub.url, world["alice_token"], "GET", "/hub/api/user")
    assert r.status_code == 200  # alice's token still works
    assert token_api(hub.url, admin_token, "GET", "/hub/api/").status_code == 200  # hub is up
