"""Named servers on the docker backend (``servers.per_user: 2``), against a real engine and
the real user image: a container per server with its own profile's limits, one home
volume per user, each server at its own URL, and names that never collide.
"""

from __future__ import annotations

import pytest

from dockertest import docker_section
from hub_config.naming import safe_slug
from hubtest import run_ok, start_server, stop_server, token_api

pytestmark = pytest.mark.docker

#: the name prefix and network of this module's hub (tests/e2e/conftest.py: names)
DOCKER_NAMES = ("dln", "dlhub-named")

PROFILES = [
    {"name": "standard", "cpu_limit": 1, "mem_limit": "1G", "default": True},
    {"name": "tiny", "cpu_limit": 0.5, "mem_limit": "512M"},
]


@pytest.fixture(scope="module")
def hub(names, hub_factory):
    config = {
        "backend": "docker",
        "docker": docker_section(names),
        "profiles": PROFILES,
        "servers": {"per_user": 2},
        "culling": {"enabled": False},
    }
    hub = hub_factory(config, name="docker-named")
    yield hub
    hub.stop()  # before `names` removes the containers, volumes and network


@pytest.fixture(scope="module")
def tokens(hub):
    admin = hub.admin().new_token("named servers")
    out = {}
    for name in ("a-b", "a_b"):
        r = token_api(hub.url, admin, "POST", f"/hub/api/users/{name}", json={})
        assert r.status_code == 201, r.text
        r = token_api(hub.url, admin, "POST", f"/hub/api/users/{name}/tokens", json={})
        out[name] = r.json()["token"]
    return out


def container(engine, names, user: str, server: str = ""):
    name = f"{names['prefix']}-{safe_slug(user)}"
    return engine.containers.get(f"{name}--{safe_slug(server)}" if server else name)


def test_two_servers_of_one_user_run_in_their_own_containers(hub, engine, names, tokens):
    t = tokens["a-b"]
    start_server(hub.url, t, "a-b", {"profile": "standard"})
    start_server(hub.url, t, "a-b", {"profile": "tiny"}, server="small-1")
    try:
        default, small = (
            container(engine, names, "a-b"),
            container(engine, names, "a-b", "small-1"),
        )
        assert default.id != small.id
        assert default.name == f"{names['prefix']}-a-2db"
        assert small.name == f"{names['prefix']}-a-2db--small-2d1"
        # each with its own profile's limits
        assert default.attrs["HostConfig"]["Memory"] == 1024**3
        assert small.attrs["HostConfig"]["Memory"] == 512 * 1024**2
        assert small.attrs["HostConfig"]["CpuQuota"] == 50_000  # of a 100 ms period
        # one home volume, mounted by both
        homes = [
            {m["Name"] for m in c.attrs["Mounts"] if m["Type"] == "volume"}
            for c in (default, small)
        ]
        home = f"{names['prefix']}-home-a-2db"
        assert home in homes[0] and home in homes[1]
        run_ok(hub.url, t, "a-b", "open('shared.txt', 'w').write('from default')")
        seen = run_ok(hub.url, t, "a-b", "print(open('shared.txt').read())", server="small-1")
        assert seen == "from default"
        profile = "import os; print(os.environ['DLHUB_PROFILE'])"
        assert run_ok(hub.url, t, "a-b", profile, server="small-1") == "tiny"
        for path in ("/user/a-b/api/status", "/user/a-b/small-1/api/status"):
            assert token_api(hub.url, t, "GET", path).status_code == 200, path
    finally:
        stop_server(hub.url, t, "a-b", server="small-1")
        stop_server(hub.url, t, "a-b")
    # removed at stop (remove: True), the home volume kept
    assert not engine.containers.list(all=True, filters={"name": f"{names['prefix']}-a-2db"})
    assert engine.volumes.get(f"{names['prefix']}-home-a-2db")


def test_look_alike_users_and_servers_get_their_own_containers(hub, engine, names, tokens):
    start_server(hub.url, tokens["a-b"], "a-b", {"profile": "tiny"}, server="x")
    start_server(hub.url, tokens["a_b"], "a_b", {"profile": "tiny"}, server="x")
    try:
        one, two = container(engine, names, "a-b", "x"), container(engine, names, "a_b", "x")
        assert one.id != two.id and one.name != two.name
        # and another user cannot reach either
        for owner, other in (("a-b", "a_b"), ("a_b", "a-b")):
            r = token_api(
                hub.url, tokens[other], "GET", f"/user/{owner}/x/api/status", allow_redirects=False
            )
            assert r.status_code in (302, 403), (owner, r.status_code)
    finally:
        stop_server(hub.url, tokens["a-b"], "a-b", server="x")
        stop_server(hub.url, tokens["a_b"], "a_b", server="x")
