"""The spawners keep the profile and the GPU lease in their state (what the hub stores in
its database), so a restarted hub still knows them; a stopped server keeps neither."""

import asyncio
from types import SimpleNamespace

import pytest

from hub_config.kubernetes import KubernetesSpawner
from hub_config.spawners import DockerSpawner, LocalSpawner

PROFILE = {"name": "gpu", "display_name": "One GPU", "gpus": 1, "cpu_limit": 2.0}

pytestmark = pytest.mark.usefixtures("kubeconfig")  # KubeSpawner reads it when made


def make(cls):
    user = SimpleNamespace(name="alice", id=1, url="/user/alice/", groups=[])
    if cls is KubernetesSpawner:
        # KubeSpawner makes its API client on an event loop (nothing is sent)
        async def made():
            return cls(_mock=True, user=user, namespace="dlhub")

        return asyncio.run(made())
    return cls(user=user)


@pytest.mark.parametrize("cls", [LocalSpawner, DockerSpawner, KubernetesSpawner])
def test_profile_and_lease_survive_a_round_trip_through_the_state(cls):
    spawner = make(cls)
    spawner.profile = dict(PROFILE)
    spawner.gpu_lease = "lease-1"
    spawner.gpu_devices = ["GPU-0"]
    state = spawner.get_state()
    assert state["profile"] == PROFILE
    assert state["gpu_lease"] == "lease-1" and state["gpu_devices"] == ["GPU-0"]

    restarted = make(cls)  # the hub after a restart: a new spawner, the stored state
    restarted.load_state(state)
    assert restarted.profile == PROFILE
    assert restarted.gpus_wanted() == 1
    assert (restarted.gpu_lease, restarted.gpu_devices) == ("lease-1", ["GPU-0"])
    if cls is KubernetesSpawner:  # the base class's own state is kept beside ours
        assert restarted.get_state()["pod_name"] == spawner.pod_name

    restarted.clear_state()
    state = restarted.get_state()
    assert not {"profile", "gpu_lease", "gpu_devices"} & set(state)
    assert (restarted.profile, restarted.gpu_lease, restarted.gpu_devices) == ({}, "", [])


def test_a_cpu_server_has_no_lease_in_its_state():
    spawner = make(DockerSpawner)
    spawner.profile = {"name": "cpu", "gpus": 0}
    state = spawner.get_state()
    assert state["profile"] == {"name": "cpu", "gpus": 0}
    assert "gpu_lease" not in state and "gpu_devices" not in state
