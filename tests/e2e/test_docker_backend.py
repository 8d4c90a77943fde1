"""The docker backend against a real Docker engine and the real user image.

Each test module run uses its own network and name prefix, and removes the containers,
volumes and network it made.
"""

from __future__ import annotations

import math
import signal

import docker
import pytest

from dockertest import USER_IMAGE as IMAGE
from dockertest import docker_section, network_gateway, user_container
from hub_config.naming import safe_slug
from hubtest import (
    run_code,
    start_server,
    stop_server,
    token_api,
    wait_for,
)

pytestmark = pytest.mark.docker

#: the name prefix and network of this module's hub (tests/e2e/conftest.py: names)
DOCKER_NAMES = ("dlt", "dlhub-test")

POLL_INTERVAL = 5


@pytest.fixture(scope="module")
def hub(names, hub_factory):
    config = {
        "backend": "docker",
        "hub": {"poll_interval": POLL_INTERVAL},
        "docker": docker_section(names),
        "profiles": [
            {"name": "standard", "cpu_limit": 1, "mem_limit": "1G", "default": True},
            {"name": "tiny", "cpu_limit": 0.5, "mem_limit": "512M"},
        ],
        "culling": {"enabled": False},
    }
    hub = hub_factory(config, name="docker")
    yield hub
    hub.stop()  # before `names` removes the containers, volumes and network


@pytest.fixture(scope="module")
def admin_token(hub):
    return hub.admin().new_token("docker tests")


@pytest.fixture(scope="module")
def users(hub, admin_token):
    """alice and bob, each with a token of their own and a running server."""
    tokens = {}
    for name in ("alice", "bob"):
        r = token_api(hub.url, admin_token, "POST", f"/hub/api/users/{name}", json={})
        assert r.status_code == 201
        r = token_api(hub.url, admin_token, "POST", f"/hub/api/users/{name}/tokens", json={})
        tokens[name] = r.json()["token"]
        start_server(hub.url, tokens[name], name)
    return tokens


TF_FIT = """
import numpy as np, keras, os
x, y = np.random.rand(32, 3).astype("float32"), np.random.rand(32, 1).astype("float32")
m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
m.compile(optimizer="sgd", loss="mse")
print(m.fit(x, y, epochs=1, verbose=0).history["loss"][0], os.getuid(), os.getcwd())
"""


def test_two_users_run_tensorflow_in_their_own_containers(hub, engine, names, users):
    for user, token in users.items():
        out = run_code(hub.url, token, user, TF_FIT)
        assert out["status"] == "ok", out
        loss, uid, cwd = out["stdout"].split()
        assert math.isfinite(float(loss))
        assert uid == "1000" and cwd == "/home/jovyan"
        c = user_container(engine, names, user)
        assert c.status == "running"
        assert c.image.tags == [IMAGE]
        # the home is the user's own named volume; besides it only the default shared
        # volumes are mounted (datasets read-only)
        mounts = c.attrs["Mounts"]
        assert sorted((m["Type"], m["Name"], m["Destination"], m["RW"]) for m in mounts) == [
            ("volume", f"{names['prefix']}-datasets", "/home/jovyan/datasets", False),
            ("volume", f"{names['prefix']}-home-{user}", "/home/jovyan", True),
            ("volume", f"{names['prefix']}-shared", "/home/jovyan/shared", True),
        ]
        # the starter notebooks were copied into the new home
        listing = token_api(hub.url, token, "GET", f"/user/{user}/api/contents").json()
        assert "01-keras-digits.ipynb" in {item["name"] for item in listing["content"]}


def test_profile_limits_are_applied_in_the_container(hub, users):
    code = """
from pathlib import Path
v1, v2 = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory.max")
print((v1 if v1.exists() else v2).read_text().strip())
"""
    out = run_code(hub.url, users["alice"], "alice", code)
    assert out["stdout"].strip() == str(1024**3)


def test_other_users_server_is_forbidden(hub, users):
    r = token_api(hub.url, users["bob"], "GET", "/user/alice/api/contents")
    assert r.status_code == 403
    r = token_api(hub.url, users["bob"], "POST", "/user/alice/api/kernels", json={})
    assert r.status_code == 403


def test_container_cannot_reach_proxy_api_or_other_servers(hub, engine, names, users):
    bob_ip = user_container(engine, names, "bob").attrs["NetworkSettings"]["Networks"][
        names["network"]
    ]["IPAddress"]
    gateway = network_gateway(engine, names["network"])
    api_port = hub.config["hub"]["proxy_api_port"]
    hub_port = hub.config["hub"]["hub_port"]
    code = f"""
import socket
def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except OSError:
        return "closed"
print(reach("{gateway}", {api_port}), reach("{bob_ip}", 8888), reach("{gateway}", {hub_port}))
"""
    out = run_code(hub.url, users["alice"], "alice", code)
    # the proxy's API and bob's server are out of reach; the hub's API is not
    assert out["stdout"].split() == ["closed", "closed", "open"]


def test_unlisted_image_is_refused(hub, users, admin_token):
    r = token_api(
        hub.url,
        admin_token,
        "POST",
        "/hub/api/users/carol",
        json={},
    )
    assert r.status_code == 201
    r = token_api(
        hub.url,
        admin_token,
        "POST",
        "/hub/api/users/carol/server",
        json={"profile": "tiny", "image": "busybox:latest"},
    )
    assert r.status_code == 400
    assert "unknown option 'image'" in r.json()["message"]


@pytest.mark.parametrize("user", ["a-b", "a_b", "A-b", "ünï-çødé", "u" * 70])
def test_names_are_distinct_valid_docker_names(engine, names, user):
    slugs = {safe_slug(u) for u in ["a-b", "a_b", "A-b", "ünï-çødé", "u" * 70]}
    assert len(slugs) == 5
    # the engine accepts the container and volume names the spawner derives
    cname = f"{names['prefix']}-{safe_slug(user)}"
    vname = f"{names['prefix']}-home-{safe_slug(user)}"
    volume = engine.volumes.create(vname)
    created = engine.containers.create(IMAGE, name=cname, command=["true"])
    try:
        assert created.name == cname and volume.name == vname
    finally:
        created.remove(force=True)
        volume.remove(force=True)


def test_user_with_escaped_characters_spawns(hub, admin_token, engine, names):
    # the username rule allows '.' and '_', which container and volume names escape
    user = "dot.under_score-1"
    r = token_api(hub.url, admin_token, "POST", f"/hub/api/users/{user}", json={})
    assert r.status_code == 201
    start_server(hub.url, admin_token, user)
    assert user_container(engine, names, user).status == "running"
    stop_server(hub.url, admin_token, user)
    with pytest.raises(docker.errors.NotFound):
        user_container(engine, names, user)  # removed on stop; the home volume stays
    assert engine.volumes.get(f"{names['prefix']}-home-{safe_slug(user)}")


def test_hub_killed_servers_survive_and_come_back(hub, engine, names, users):
    before = {u: user_container(engine, names, u).id for u in users}
    started = {
        u: token_api(hub.url, t, "GET", f"/hub/api/users/{u}").json()["servers"][""]["started"]
        for u, t in users.items()
    }
    hub.stop(sig=signal.SIGKILL)
    assert {u: user_container(engine, names, u).status for u in users} == {
        "alice": "running",
        "bob": "running",
    }
    hub.start()
    for user, token in users.items():

        def reachable(user=user, token=token):
            return token_api(hub.url, token, "GET", f"/user/{user}/api/status").status_code == 200

        wait_for(reachable, 60, what=f"{user}'s server through the restarted hub")
        model = token_api(hub.url, token, "GET", f"/hub/api/users/{user}").json()
        assert model["servers"][""]["started"] == started[user]  # not spawned again
        assert user_container(engine, names, user).id == before[user]


def test_container_killed_outside_is_noticed(hub, engine, names, users):
    user_container(engine, names, "bob").kill()

    def stopped():
        model = token_api(hub.url, users["bob"], "GET", "/hub/api/users/bob").json()
        return "" not in model["servers"]

    # how long it takes is measured in bench/spawn; here only that it is within a poll
    wait_for(stopped, POLL_INTERVAL + 2, interval=0.5, what="the hub to notice within a poll")


def test_tensorboard_opens_through_the_server_proxy(hub, users):
    code = """
import subprocess, sys
subprocess.Popen(
    [sys.executable, "-m", "tensorboard.main", "--logdir", "/tmp/tb", "--port", "6006"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
)
print("started")
"""
    assert run_code(hub.url, users["alice"], "alice", code)["stdout"].strip() == "started"

    def tensorboard_page():
        r = token_api(hub.url, users["alice"], "GET", "/user/alice/proxy/6006/")
        return r.status_code == 200 and "TensorBoard" in r.text

    wait_for(tensorboard_page, 60, interval=1, what="TensorBoard through jupyter-server-proxy")
    # and not for bob
    r = token_api(hub.url, users["bob"], "GET", "/user/alice/proxy/6006/")
    assert r.status_code == 403
