"""Checklist item 9: what a user's server can reach.

Code in alice's kernel (as anything she runs) tries the proxy's API, bob's server, the
GPU scheduler's hub-only endpoints and the hub's files. On docker: the proxy's API and
the hub's public port (both on the host's 127.0.0.1) are closed from the container, bob's
container is closed (inter-container traffic off), the hub's API is open (the control),
the scheduler answers its hub-only endpoints with 403 without the hub's secret, and no
hub file is in the container. On local: the proxy's API answers 403 without its token,
the scheduler's hub-only endpoints 403 without the secret, and the server's environment
holds neither (that the hub's files are out of reach of a local user's account is
tests/security/test_local_isolation.py).
"""

from __future__ import annotations

import pytest
from securitykit import BACKENDS, NET_PROBE, container, gateway

from hubtest import free_port, run_ok, start_server, stop_server, token_api

pytestmark = pytest.mark.integration

HUB_ONLY = [
    ("POST", "api/hub/requests"),
    ("GET", "api/hub/capacity?user=alice"),
    ("GET", "api/hub/requests/any"),
    ("DELETE", "api/hub/servers/bob/"),
]


@pytest.fixture(scope="module", params=BACKENDS)
def hub(request, hubs):
    config = {
        "gpus": {
            "enabled": True,
            "devices": [{"uuid": "GPU-0", "model": "A100"}],
            "port": free_port(),
        },
        "profiles": [{"name": "cpu", "default": True}],
    }
    hub = hubs.start(request.param, config, name="reach")
    yield hub
    hubs.stop(hub)


@pytest.fixture(scope="module")
def tokens(hub):
    admin = hub.admin()
    out = {name: hub.approved_user(admin, name).new_token("reach") for name in ("alice", "bob")}
    for name, token in out.items():
        start_server(hub.url, token, name)
    yield out
    for name, token in out.items():
        stop_server(hub.url, token, name)


def probe(hub, tokens, code: str) -> list[str]:
    return run_ok(hub.url, tokens["alice"], "alice", NET_PROBE + code).split()


def host_address(hub, request) -> str:
    """Where the host is, seen from alice's server."""
    if hub.backend == "docker":
        return gateway(request.getfixturevalue("engine"), hub)
    return "127.0.0.1"


def test_the_servers_environment_holds_no_hub_secret(hub, tokens):
    names = probe(hub, tokens, "import os; print(*sorted(os.environ))")
    for secret in ("CONFIGPROXY_AUTH_TOKEN", "DLHUB_GPU_HUB_SECRET", "JUPYTERHUB_CRYPT_KEY"):
        assert secret not in names


def test_the_proxy_api_is_out_of_reach(hub, tokens, request):
    port = hub.config["hub"]["proxy_api_port"]
    host = host_address(hub, request)
    if hub.backend == "docker":
        # the proxy's API and the hub's public port listen on the host's 127.0.0.1
        public = hub.port
        out = probe(
            hub,
            tokens,
            f"print(reach('{host}', {port}), reach('127.0.0.1', {port}), "
            f"reach('{host}', {public}))",
        )
        assert out == ["closed", "closed", "closed"]
    else:
        # it answers, but not without its token
        out = probe(
            hub,
            tokens,
            f"print(get('http://{host}:{port}/api/routes'), "
            f"get('http://{host}:{port}/api/routes/user/alice', method='DELETE'))",
        )
        assert out == ["403", "403"]
    # the routes are unchanged
    r = token_api(hub.url, tokens["alice"], "GET", "/user/alice/api/status")
    assert r.status_code == 200


def test_other_users_servers_are_out_of_reach(hub, tokens, request):
    if hub.backend == "docker":
        engine = request.getfixturevalue("engine")
        net = hub.names["network"]
        bob_ip = container(engine, hub, "bob").attrs["NetworkSettings"]["Networks"][net][
            "IPAddress"
        ]
        hub_port = hub.config["hub"]["hub_port"]
        out = probe(
            hub,
            tokens,
            f"print(reach('{bob_ip}', 8888), reach('{gateway(engine, hub)}', {hub_port}))",
        )
        # bob's server is closed; the hub's API (the control) is open
        assert out == ["closed", "open"]
    else:
        # local servers listen on the host's 127.0.0.1: bob's port is open, but his
        # server lets in nothing without his token
        port = run_ok(
            hub.url,
            tokens["bob"],
            "bob",
            "import os, urllib.parse\n"
            "print(urllib.parse.urlparse(os.environ['JUPYTERHUB_SERVICE_URL']).port)",
        )
        url = f"http://127.0.0.1:{port}/user/bob/api/contents"
        code = (
            "import os\n"
            f"print(get('{url}'), get('{url}', "
            "{'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}))"
        )
        assert probe(hub, tokens, code) == ["403", "403"]


def test_the_schedulers_hub_only_endpoints_need_the_secret(hub, tokens, request):
    host = host_address(hub, request)
    port = hub.config["gpus"]["port"]
    base = f"http://{host}:{port}/services/gpu-scheduler/"
    calls = ", ".join(
        f"get('{base}{path}', {headers}, method='{method}')"
        for method, path in HUB_ONLY
        for headers in (
            "{}",
            "{'Authorization': 'dlhub-hub wrong'}",
            "{'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}",
        )
    )
    out = probe(hub, tokens, f"import os\nprint({calls})")
    assert out == ["403"] * (3 * len(HUB_ONLY)), out


def test_the_hubs_files_are_not_in_the_container(hub, tokens, request):
    if hub.backend != "docker":
        pytest.skip("local: tests/security/test_local_isolation.py (the accounts' reach)")
    engine = request.getfixturevalue("engine")
    mounts = container(engine, hub, "alice").attrs["Mounts"]
    data_dir = str(hub.data_dir)
    assert [m for m in mounts if m["Type"] == "bind" or data_dir in m.get("Source", "")] == []
    code = (
        "import os\n"
        "found = [os.path.join(d, f) for top in ('/etc', '/home', '/opt', '/srv', '/tmp', '/var',"
        " '/run', '/mnt') for d, _, files in os.walk(top) for f in files"
        " if f in ('jupyterhub.sqlite', 'jupyterhub_cookie_secret', 'gpu-scheduler-secret',"
        " 'gpu-scheduler.sqlite')]\n"
        "print(len(found), *found)"
    )
    assert probe(hub, tokens, code) == ["0"]
