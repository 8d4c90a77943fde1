"""Checklist item 3: the token inside a user's server reaches that server and nothing else.

The server's own token (``JUPYTERHUB_API_TOKEN``, read in a kernel as any code the user
runs could) of alice's server and of the admin's own server cannot list users, reach an
admin endpoint of the hub, start or stop servers, mint tokens, reach another user's
server, or reach the GPU scheduler's admin and hub-only API. On local and docker.
"""

from __future__ import annotations

import pytest
from securitykit import BACKENDS

from gputest import gpu_hub_config
from hubtest import run_ok, start_server, stop_server, token_api

pytestmark = pytest.mark.integration

SCHEDULER = "/services/gpu-scheduler/"


@pytest.fixture(scope="module", params=BACKENDS)
def hub(request, hubs):
    config = gpu_hub_config([{"name": "cpu", "default": True}], count=1)
    hub = hubs.start(request.param, config, name="servertoken")
    yield hub
    hubs.stop(hub)


@pytest.fixture(scope="module")
def servers(hub):
    """The running servers of the admin and of alice: {user: (user's token, server token)}."""
    admin = hub.admin()
    sessions = {"admin": admin, "alice": hub.approved_user(admin, "alice")}
    out = {}
    for name, session in sessions.items():
        token = session.new_token("server-token")
        start_server(hub.url, token, name)
        server_token = run_ok(
            hub.url, token, name, "import os; print(os.environ['JUPYTERHUB_API_TOKEN'])"
        )
        assert server_token and server_token != token
        out[name] = (token, server_token)
    yield out
    for name, (token, _) in out.items():
        stop_server(hub.url, token, name)


def test_the_server_token_is_scoped_to_its_server(hub, servers):
    for user, (_, server_token) in servers.items():
        r = token_api(hub.url, server_token, "GET", "/hub/api/user")
        assert r.status_code == 200 and r.json()["name"] == user
        scopes = r.json()["scopes"]
        # every scope is limited to this user, this server, or the scheduler's API
        for scope in scopes:
            assert "!" in scope, (user, scope)
            _, limit = scope.split("!", 1)
            assert limit in (
                f"user={user}",
                f"server={user}/",
                "service=gpu-scheduler",
            ), (user, scope)
        # and it reaches its own server
        r = token_api(hub.url, server_token, "GET", f"/user/{user}/api/status")
        assert r.status_code == 200, (user, r.status_code)


HUB_REQUESTS = [
    ("GET", "/hub/api/users", None),
    ("GET", "/hub/api/users/{other}", None),
    ("POST", "/hub/api/users/eve", {}),
    ("PATCH", "/hub/api/users/{me}", {"admin": True}),
    ("DELETE", "/hub/api/users/{other}", None),
    ("POST", "/hub/api/users/{me}/tokens", {"note": "more"}),
    ("GET", "/hub/api/users/{me}/tokens", None),
    ("POST", "/hub/api/users/{other}/server", {}),
    ("DELETE", "/hub/api/users/{other}/server", None),
    ("DELETE", "/hub/api/users/{me}/server", None),
    ("GET", "/hub/api/groups", None),
    ("POST", "/hub/api/groups/rogue", {}),
    ("GET", "/hub/api/proxy", None),
    ("POST", "/hub/api/shutdown", None),
    ("GET", "/hub/api/services", None),
    ("GET", "/user/{other}/api/contents", None),
    ("POST", "/user/{other}/api/kernels", {}),
    ("GET", "/user/{other}/api/terminals", None),
]


@pytest.mark.parametrize("user", ["alice", "admin"])
def test_the_server_token_reaches_no_admin_endpoint_and_no_other_server(hub, servers, user):
    other = "admin" if user == "alice" else "alice"
    server_token = servers[user][1]
    for method, path, body in HUB_REQUESTS:
        path = path.format(me=user, other=other)
        r = token_api(hub.url, server_token, method, path, json=body, allow_redirects=False)
        assert r.status_code in (403, 404), (user, method, path, r.status_code, r.text[:200])
    # nothing happened: both servers still run, no user was made
    admin_token = servers["admin"][0]
    users = token_api(hub.url, admin_token, "GET", "/hub/api/users").json()
    assert {u["name"] for u in users} == {"admin", "alice"}
    assert all(u["servers"][""]["ready"] for u in users)
    assert all(not u["admin"] for u in users if u["name"] == "alice")


@pytest.mark.parametrize("user", ["alice", "admin"])
def test_the_server_token_cannot_reach_the_schedulers_admin_api(hub, servers, user):
    server_token = servers[user][1]
    for method, path in [
        ("GET", "api/admin/state"),
        ("POST", "api/admin/leases/any/reclaim"),
        ("PUT", "api/admin/quotas"),
        ("GET", "metrics"),
    ]:
        r = token_api(hub.url, server_token, method, SCHEDULER + path, json={"x": 1})
        assert r.status_code == 403, (user, method, path, r.status_code)
    # the hub-only endpoints take the hub's secret, not a token
    for method, path in [
        ("POST", "api/hub/requests"),
        ("GET", "api/hub/capacity?user=alice"),
        ("DELETE", f"api/hub/servers/{user}/"),
    ]:
        r = token_api(hub.url, server_token, method, SCHEDULER + path, json={"user": user})
        assert r.status_code == 403, (user, method, path, r.status_code)
    # the control: the admin's own API token is let in
    admin_token = servers["admin"][0]
    assert token_api(hub.url, admin_token, "GET", SCHEDULER + "api/admin/state").status_code == 200
