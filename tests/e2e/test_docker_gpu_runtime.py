"""GPU profiles on the docker backend, against the real engine of this host, which has no
NVIDIA runtime: a warning at start-up, a clear 503 at spawn (never a 500), the lease given
back; and the profile kept in the spawner state across a hub restart (containers outlive
the hub on this backend).
"""

from __future__ import annotations

import json

import pytest
import requests

from dockertest import docker_section
from gputest import SchedulerClient, gpu_hub_config
from hub_config.docker_gpu import NO_NVIDIA_RUNTIME
from hubtest import (
    start_server,
    stop_server,
    token_api,
    wait_for,
)

pytestmark = pytest.mark.docker

#: the name prefix and network of this module's hub (tests/e2e/conftest.py: names)
DOCKER_NAMES = ("dlg", "dlhub-gpu")


@pytest.fixture(scope="module")
def hub(names, hub_factory):
    profiles = [
        {"name": "standard", "cpu_limit": 1, "mem_limit": "1G", "default": True},
        {"name": "gpu", "cpu_limit": 1, "mem_limit": "1G", "gpus": 1},
    ]
    config = {
        **gpu_hub_config(profiles, count=1),
        "backend": "docker",
        "docker": docker_section(names),
        "culling": {"enabled": False},
    }
    hub = hub_factory(config, name="dockergpu")
    yield hub
    hub.stop()  # before `names` removes the containers, volumes and network


@pytest.fixture(scope="module")
def admin_token(hub):
    return hub.admin().new_token("docker gpu")


@pytest.fixture(scope="module")
def alice(hub, admin_token):
    r = token_api(hub.url, admin_token, "POST", "/hub/api/users/alice", json={})
    assert r.status_code == 201, r.text
    r = token_api(hub.url, admin_token, "POST", "/hub/api/users/alice/tokens", json={})
    return r.json()["token"]


@pytest.fixture(scope="module")
def no_nvidia_runtime(engine):
    if "nvidia" in (engine.info().get("Runtimes") or {}):
        pytest.skip("this host's Docker engine has the NVIDIA runtime: GPU servers can start")


def leases(hub, admin_token) -> list:
    return SchedulerClient(hub).leases(admin_token)


def spawn_failure(hub, token, user, options) -> tuple[int, str]:
    """Start ``user``'s server; the status and message of its failure (the API answers
    at once, or the progress stream says it when the start took long)."""
    r = token_api(hub.url, token, "POST", f"/hub/api/users/{user}/server", json=options)
    if r.status_code != 202:
        return r.status_code, r.json().get("message", "")
    url = f"{hub.url}/hub/api/users/{user}/server/progress"
    headers = {"Authorization": f"token {token}"}
    with requests.get(url, headers=headers, stream=True, timeout=120) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed"):
                    return 202, event.get("message", "")
    raise AssertionError(f"the start of {user}'s server did not fail")


def test_start_up_warns_that_gpu_profiles_cannot_start(hub, no_nvidia_runtime):
    assert "dlhub: warning: the GPU profiles (gpu) cannot start" in hub.log()
    assert "lists no NVIDIA runtime" in hub.log()


def test_a_gpu_spawn_fails_with_a_clear_message_not_a_500(
    hub, engine, admin_token, alice, no_nvidia_runtime
):
    status, message = spawn_failure(hub, alice, "alice", {"profile": "gpu"})
    assert status in (202, 503), message
    assert NO_NVIDIA_RUNTIME in message
    assert "could not select device driver" not in message
    # nothing is left holding the GPU, and the server is not running
    wait_for(lambda: leases(hub, admin_token) == [], 10, what="the lease to be given back")
    model = token_api(hub.url, alice, "GET", "/hub/api/users/alice").json()
    assert "" not in model["servers"]
    assert "500 POST /hub/api/users/alice/server" not in hub.log()


def server_state(hub, admin_token, user) -> dict:
    model = token_api(hub.url, admin_token, "GET", f"/hub/api/users/{user}").json()
    return model["servers"][""]["state"]


def test_the_profile_is_kept_across_a_hub_restart(hub, engine, admin_token, alice):
    start_server(hub.url, alice, "alice", {"profile": "standard"})
    before = server_state(hub, admin_token, "alice")
    assert before["profile"]["name"] == "standard"
    assert "gpu_lease" not in before  # a CPU server holds no lease
    hub.stop()  # the container stays (cleanup_servers is off on this backend)
    hub.start()
    after = server_state(hub, admin_token, "alice")
    assert after["profile"] == before["profile"]
    assert after["object_id"] == before["object_id"]  # the same container
    stop_server(hub.url, alice, "alice")
    model = token_api(hub.url, admin_token, "GET", "/hub/api/users/alice").json()
    assert "" not in model["servers"]
