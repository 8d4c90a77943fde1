"""The hub itself in a container (the `dlhub/hub` image) spawning users' containers.

The hub container shares the host's network and is given the engine's socket, so it
works exactly as a hub on the host: it creates the user network, listens on its gateway
and reaches each user's container on it.
"""

from __future__ import annotations

import os
import uuid

import pytest
import yaml

from dockertest import USER_IMAGE
from hubtest import (
    Browserless,
    docker_engine_with,
    free_port,
    new_password,
    setup_token_in,
    start_server,
    token_api,
    wait_for,
)

pytestmark = pytest.mark.docker

HUB_IMAGE = "dlhub/hub:0.1.0"


@pytest.fixture(scope="module")
def engine():
    return docker_engine_with(HUB_IMAGE, USER_IMAGE)


def test_hub_container_spawns_user_containers(engine, tmp_path):
    tag = uuid.uuid4().hex[:6]
    port = free_port()
    config = {
        "backend": "docker",
        "hub": {
            "bind_url": f"http://127.0.0.1:{port}",
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
        },
        "docker": {
            "image": USER_IMAGE,
            "network": f"dlhub-hubtest-{tag}",
            "name_prefix": f"h{tag}",
        },
        "culling": {"enabled": False},
    }
    config_file = tmp_path / "dlhub.yaml"
    config_file.write_text(yaml.safe_dump(config))
    config_file.chmod(0o644)
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    hub = engine.containers.run(
        HUB_IMAGE,
        name=f"dlhub-hub-{tag}",
        detach=True,
        network_mode="host",
        group_add=[str(socket_gid)],
        environment={"DLHUB_CONFIG": "/etc/dlhub/custom.yaml"},
        volumes={
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(config_file): {"bind": "/etc/dlhub/custom.yaml", "mode": "ro"},
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: token_api(base, "", "GET", "/hub/api/").status_code == 200,
            60,
            what="the hub container",
        )
        admin = Browserless(base)
        password = new_password()
        # the one-time setup link of the banner, as `docker logs` shows it
        admin.first_admin("admin", password, setup_token_in(hub.logs().decode()))
        admin.login("admin", password)
        token = admin.new_token("hub in docker")
        start_server(base, token, "admin")
        r = token_api(base, token, "GET", "/user/admin/api/status")
        assert r.status_code == 200
        user = engine.containers.get(f"h{tag}-admin")
        assert user.status == "running"
        assert user.image.tags == [USER_IMAGE]
    except BaseException:
        print(hub.logs().decode(errors="replace")[-5000:])
        raise
    finally:
        hub.remove(force=True)
        for c in engine.containers.list(all=True, filters={"name": f"h{tag}-"}):
            c.remove(force=True)
        for v in engine.volumes.list(filters={"name": f"h{tag}-"}):
            v.remove(force=True)
        for n in engine.networks.list(names=[f"dlhub-hubtest-{tag}"]):
            n.remove()
