"""/dev/shm per profile (hub_config.shm): the size, Docker's host config, the Kubernetes
volume; the platform config accepts and checks ``shm_size``."""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from hub_config import k8s_objects, mapping, shm
from hub_config.config import ConfigError, validate
from hub_config.spawners import DockerSpawner

GiB, MiB = 1024**3, 1024**2


def user():
    return SimpleNamespace(name="alice", id=1, url="/user/alice/", groups=[])


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ({"mem_limit": "4G", "shm_size": None}, 2 * GiB),  # half of mem_limit
        ({"mem_limit": "1G"}, 512 * MiB),
        ({"mem_limit": "4G", "shm_size": "256M"}, 256 * MiB),
        ({"mem_limit": "4G", "shm_size": "1.5G"}, int(1.5 * GiB)),
        ({"mem_limit": "64M"}, 64 * MiB),  # never below Docker's own 64 MiB
        ({"mem_limit": "4G", "shm_size": "1K"}, 64 * MiB),
    ],
)
def test_shm_bytes(profile, expected):
    assert shm.shm_bytes(profile) == expected


def test_a_bad_size_is_refused_by_the_parser():
    with pytest.raises(ValueError, match="not a size"):
        shm.parse_size("lots")


def test_the_config_takes_shm_size_per_profile_and_refuses_a_bad_one():
    cfg = validate({"profiles": [{"name": "cpu", "shm_size": "1G"}, {"name": "small"}]})
    assert [p["shm_size"] for p in cfg["profiles"]] == ["1G", None]
    with pytest.raises(ConfigError, match="shm_size"):
        validate({"profiles": [{"name": "cpu", "shm_size": "a lot"}]})


def test_docker_containers_get_the_profiles_shm_size_and_keep_it_with_gpus():
    profiles = [
        {"name": "cpu", "cpu_limit": 1, "mem_limit": "2G", "shm_size": None},
        {"name": "big", "cpu_limit": 1, "mem_limit": "8G", "shm_size": "3G"},
    ]
    spawner = DockerSpawner(user=user(), profiles=profiles, default_image="dlhub/x:1")
    spawner.apply_user_options(spawner, {"profile": "cpu"})
    assert spawner.extra_host_config == {"shm_size": 1 * GiB}
    spawner.apply_user_options(spawner, {"profile": "big"})
    assert spawner.extra_host_config == {"shm_size": 3 * GiB}
    spawner.assign_gpus(["GPU-1"])
    assert spawner.extra_host_config["shm_size"] == 3 * GiB
    assert spawner.extra_host_config["device_requests"][0]["DeviceIDs"] == ["GPU-1"]


def test_the_kubernetes_volume_is_memory_backed_at_dev_shm():
    volumes, mounts = k8s_objects.shm_volume(256 * MiB)
    assert volumes == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(256 * MiB)}}
    ]
    assert mounts == [{"name": "dshm", "mountPath": "/dev/shm"}]


CHART_ENV = {
    "DLHUB_RELEASE": "lab",
    "DLHUB_RELEASE_FULLNAME": "lab-dlhub",
    "DLHUB_HUB_CONNECT_URL": "http://lab-dlhub-hub:8081",
    "POD_NAMESPACE": "dlhub",
}


def test_the_pod_mounts_dev_shm_of_the_profiles_size(kubeconfig):
    from kubernetes_asyncio.client import ApiClient
    from traitlets.config import Config

    from hub_config.kubernetes import KubernetesSpawner

    cfg = validate(
        {
            "backend": "kubernetes",
            "profiles": [{"name": "cpu", "mem_limit": "2G", "shm_size": "768M"}],
        }
    )
    traits = mapping.traits_for(cfg, Path("/srv/dlhub"), python=sys.executable, environ=CHART_ENV)

    async def pod():
        c = Config()
        mapping.apply(c, traits)
        spawner = KubernetesSpawner(_mock=True, user=user(), config=c)
        spawner.api_token = "token"
        spawner.apply_user_options(spawner, {"profile": "cpu"})
        spawner.mount_volumes()
        made = await spawner.get_pod_manifest()
        await spawner.api.api_client.close()
        return ApiClient().sanitize_for_serialization(made)

    # in a thread of its own: after the browser tests a Playwright loop runs in this one
    with ThreadPoolExecutor(1) as pool:
        spec = pool.submit(asyncio.run, pod()).result()["spec"]
    (dshm,) = [v for v in spec["volumes"] if v["name"] == "dshm"]
    assert dshm["emptyDir"] == {"medium": "Memory", "sizeLimit": str(768 * MiB)}
    (container,) = spec["containers"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
