"""A GPU server outlives a hub restart (as on the docker and kubernetes backends, where the
hub leaves servers running): the restarted hub still knows its profile and lease from the
spawner state, the scheduler's first check keeps the lease (the server runs with it), and
stopping the server gives the GPU back at once, not at a later check.

The local backend stands in for the others here because GPU containers need the NVIDIA
runtime; the hub is told to leave its servers running when it stops.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gputest import SchedulerClient, gpu_hub_config
from hubtest import CONFIG_PY, start_server, stop_server, token_api, wait_for

pytestmark = pytest.mark.integration

#: a restart that leaves servers running, as the docker and kubernetes backends do
KEEP_SERVERS = [
    str(Path(sys.executable).parent / "jupyterhub"),
    "-f",
    str(CONFIG_PY),
    "--JupyterHub.cleanup_servers=False",
]


@pytest.fixture(scope="module")
def hub(hub_factory):
    profiles = [
        {"name": "cpu", "default": True},
        {"name": "gpu", "display_name": "One GPU", "gpus": 1},
    ]
    # check_every: only the check at each scheduler start
    config = {**gpu_hub_config(profiles, count=1, check_every=3600), "culling": {"enabled": False}}
    hub = hub_factory(config, name="gpurestart", start=False)
    hub.start(command=KEEP_SERVERS)
    return hub


def admin_state(hub, token) -> dict:
    return SchedulerClient(hub).state(token)


def checks(hub) -> int:
    """How many checks the scheduler has made (each reads the hub's active servers)."""
    return hub.log().count("GET /hub/api/users?state=[secret] (gpu-scheduler@")


def test_stopping_a_gpu_server_after_a_hub_restart_releases_its_lease_at_once(hub):
    token = hub.admin().new_token("restart")
    start_server(hub.url, token, "admin", {"profile": "gpu"})
    (lease,) = admin_state(hub, token)["leases"]
    model = token_api(hub.url, token, "GET", "/hub/api/users/admin").json()
    state = model["servers"][""]["state"]
    assert state["gpu_lease"] == lease["id"] and state["gpu_devices"] == ["GPU-0"]
    assert state["profile"]["name"] == "gpu"

    try:
        hub.stop()
        seen = checks(hub)
        hub.start(command=KEEP_SERVERS)
        model = token_api(hub.url, token, "GET", "/hub/api/users/admin").json()
        assert model["servers"][""]["ready"]  # the same server, found again
        assert model["servers"][""]["state"]["gpu_lease"] == lease["id"]
        # the restarted scheduler's first check keeps the lease: its server runs with it
        wait_for(lambda: checks(hub) > seen, 60, what="the scheduler's first check")
        assert [x["id"] for x in admin_state(hub, token)["leases"]] == [lease["id"]]
    finally:
        stop_server(hub.url, token, "admin")
    # given back by the stop itself: the next check is an hour away
    assert admin_state(hub, token)["leases"] == []
