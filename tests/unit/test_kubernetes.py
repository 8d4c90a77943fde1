"""The kubernetes backend's pure parts: traits from the config and the chart's environment,
shared volumes as claims, and where a GPU lease puts a pod (no cluster needed)."""

import re
import sys
from pathlib import Path

import pytest

from gpu_scheduler.inventory import devices_from_nodes
from hub_config import mapping
from hub_config.config import validate
from hub_config.kubernetes import (
    KubernetesEnvError,
    chart_fullname,
    claim_slug,
    gpu_placement,
    group_claim,
    kubernetes_traits,
    parse_device,
    release_fullname,
    volume_mounts,
)

#: What helm/dlhub/templates/hub/deployment.yaml gives the hub (release "lab").
CHART_ENV = {
    "DLHUB_RELEASE": "lab",
    "DLHUB_RELEASE_FULLNAME": "lab-dlhub",
    "POD_NAMESPACE": "dlhub",
    "DLHUB_HUB_CONNECT_URL": "http://lab-dlhub-hub:8081",
    "DLHUB_PROXY_API_URL": "http://lab-dlhub-proxy-api:8001",
    "CONFIGPROXY_AUTH_TOKEN": "proxy-token",
    "DLHUB_GPU_SHARED_SECRET": "shared-secret",
}
GPU_ENV = {
    **CHART_ENV,
    "DLHUB_GPU_SCHEDULER_URL": "http://lab-dlhub-gpu-scheduler:8095",
    "DLHUB_GPU_SCHEDULER_TOKEN": "scheduler-token",
}
GPU_CONFIG = {
    "backend": "kubernetes",
    "gpus": {"enabled": True, "inventory": "kubernetes"},
    "profiles": [
        {"name": "cpu", "default": True},
        {"name": "t4", "gpus": 1, "image": "dlhub/singleuser-gpu:0.1.0"},
    ],
}


def k8s_traits(raw=None, environ=None):
    cfg = validate({"backend": "kubernetes", **(raw or {})})
    return kubernetes_traits(cfg, CHART_ENV if environ is None else environ, cfg["profiles"])


def all_traits(raw=None, environ=None):
    """Through mapping.traits_for, as the hub gets them."""
    cfg = validate({"backend": "kubernetes", **(raw or {})})
    env = CHART_ENV if environ is None else environ
    return mapping.traits_for(cfg, Path("/srv/dlhub"), python=sys.executable, environ=env)


def test_default_config_on_the_chart():
    t = all_traits()
    hub = t["JupyterHub"]
    assert hub["spawner_class"] == "hub_config.kubernetes.KubernetesSpawner"
    assert hub["hub_bind_url"] == "http://0.0.0.0:8081"
    assert hub["hub_connect_url"] == "http://lab-dlhub-hub:8081"
    assert hub["cleanup_servers"] is False
    assert t["ConfigurableHTTPProxy"]["should_start"] is False
    assert t["ConfigurableHTTPProxy"]["api_url"] == "http://lab-dlhub-proxy-api:8001"
    # no GPUs: the culler is the only service, and it is the hub's own
    assert [s["name"] for s in hub["services"]] == ["idle-culler"]

    s = t["KubernetesSpawner"]
    assert s["namespace"] == "dlhub"
    assert s["image"] == s["default_image"] == "dlhub/singleuser:0.1.0"
    assert s["image_pull_policy"] == "IfNotPresent"
    assert s["cmd"] == ["dlhub-start", "jupyterhub-singleuser"]
    assert (s["uid"], s["gid"], s["fs_gid"]) == (1000, 100, 100)
    assert s["allow_privilege_escalation"] is False
    assert s["container_security_context"]["capabilities"] == {"drop": ["ALL"]}
    assert s["container_security_context"]["runAsNonRoot"] is True
    assert s["automount_service_account_token"] is False
    assert s["service_account"] is None
    assert s["extra_labels"] == {"app.kubernetes.io/instance": "lab"}
    assert s["release_fullname"] == "lab-dlhub"
    assert s["storage_pvc_ensure"] is True
    assert s["storage_capacity"] == "10Gi"
    assert s["storage_class"] is None  # the cluster's default class
    assert s["storage_access_modes"] == ["ReadWriteOnce"]
    assert "{user_server}" in s["pod_name_template"]
    assert "{user_server}" in s["pvc_name_template"]
    assert s["volumes"] == [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    assert s["volume_mounts"] == [{"name": "home", "mountPath": "/home/jovyan"}]
    assert s["environment"] == {"NVIDIA_VISIBLE_DEVICES": "void"}
    assert s["start_timeout"] >= 600
    assert [p["name"] for p in s["profiles"]] == ["cpu"]
    assert t["GpuMixin"] == {}  # GPU scheduling off


def test_kubernetes_settings_pass_through():
    t = k8s_traits(
        {
            "kubernetes": {
                "image": "registry.example.org/dlhub/singleuser:0.1.0",
                "image_pull_policy": "Always",
                "home_size": "50Gi",
                "storage_class": "fast-ssd",
                "node_selector": {"pool": "users"},
                "gpu_product_label": "example.com/gpu-model",
            }
        }
    )
    s = t["KubernetesSpawner"]
    assert s["image"] == "registry.example.org/dlhub/singleuser:0.1.0"
    assert s["image_pull_policy"] == "Always"
    assert s["storage_capacity"] == "50Gi"
    assert s["storage_class"] == "fast-ssd"
    assert s["node_selector"] == {"pool": "users"}
    assert s["gpu_product_label"] == "example.com/gpu-model"


def test_gpus_use_the_charts_scheduler_as_an_external_service():
    t = all_traits(GPU_CONFIG, GPU_ENV)
    services = {s["name"]: s for s in t["JupyterHub"]["services"]}
    assert set(services) == {"idle-culler", "gpu-scheduler"}
    assert services["gpu-scheduler"] == {
        "name": "gpu-scheduler",
        "url": "http://lab-dlhub-gpu-scheduler:8095",
        "api_token": "scheduler-token",
        "display": True,
        "oauth_no_confirm": True,
    }
    # the hub does not start it: no command, no environment of a hub-managed service
    assert "command" not in services["gpu-scheduler"]
    assert services["idle-culler"]["command"][0] == sys.executable
    roles = {r["name"]: r for r in t["JupyterHub"]["load_roles"]}
    assert roles["gpu-scheduler"]["services"] == ["gpu-scheduler"]
    gpu = t["GpuMixin"]
    assert (
        gpu["gpu_scheduler_url"] == "http://lab-dlhub-gpu-scheduler:8095/services/gpu-scheduler/"
    )
    assert gpu["gpu_secret"] == "shared-secret"
    # the wait in the queue is part of the start
    assert t["KubernetesSpawner"]["start_timeout"] >= 600 + 3600
    assert [p["name"] for p in t["KubernetesSpawner"]["profiles"]] == ["cpu", "t4"]


def test_gpu_scheduler_url_follows_the_base_path():
    t = k8s_traits({**GPU_CONFIG, "hub": {"bind_url": "https://example.org/dlhub/"}}, GPU_ENV)
    assert t["GpuMixin"]["gpu_scheduler_url"] == (
        "http://lab-dlhub-gpu-scheduler:8095/dlhub/services/gpu-scheduler/"
    )


def test_culling_off_with_gpus_leaves_only_the_scheduler():
    t = k8s_traits({**GPU_CONFIG, "culling": {"enabled": False}}, GPU_ENV)
    assert [s["name"] for s in t["JupyterHub"]["services"]] == ["gpu-scheduler"]


@pytest.mark.parametrize(
    "missing, raw",
    [
        ("DLHUB_HUB_CONNECT_URL", None),
        ("DLHUB_GPU_SCHEDULER_URL", GPU_CONFIG),
        ("DLHUB_GPU_SCHEDULER_TOKEN", GPU_CONFIG),
        ("DLHUB_GPU_SHARED_SECRET", GPU_CONFIG),
    ],
)
def test_a_missing_variable_is_named_in_one_line(missing, raw):
    environ = {k: v for k, v in GPU_ENV.items() if k != missing}
    with pytest.raises(ValueError) as info:
        k8s_traits(raw, environ)
    message = str(info.value)
    assert missing in message and "\n" not in message
    assert isinstance(info.value, KubernetesEnvError)


def test_release_name_is_needed_without_the_fullname():
    environ = {k: v for k, v in CHART_ENV.items() if not k.startswith("DLHUB_RELEASE")}
    with pytest.raises(KubernetesEnvError, match="DLHUB_RELEASE"):
        k8s_traits(None, environ)
    environ["DLHUB_RELEASE"] = "lab"
    assert k8s_traits(None, environ)["KubernetesSpawner"]["release_fullname"] == "lab-dlhub"


def test_without_the_charts_proxy_the_hub_starts_its_own():
    environ = {k: v for k, v in CHART_ENV.items() if k != "DLHUB_PROXY_API_URL"}
    t = all_traits(None, environ)
    assert "should_start" not in t["ConfigurableHTTPProxy"]  # JupyterHub's default: True
    assert t["ConfigurableHTTPProxy"]["api_url"] == "http://127.0.0.1:8001"


def test_chart_fullname_like_the_charts_helper():
    assert chart_fullname("lab") == "lab-dlhub"
    assert chart_fullname("dlhub") == "dlhub"
    assert chart_fullname("my-dlhub-test") == "my-dlhub-test"
    long = chart_fullname("a" * 37 + "-b")
    assert len(long) <= 40 and not long.endswith("-")


# --- shared volumes -------------------------------------------------------------------------


def volumes_cfg(raw):
    return validate({"backend": "kubernetes", "volumes": raw})["volumes"]


TEAMS = {
    "groups": [
        {"group": "ml-team"},
        {"group": "Vision_Lab", "others": "read", "mount": "/data/vision"},
        {"group": "secret", "others": "none", "source": "nfs-secret"},
    ]
}
#: Vision_Lab is no DNS label: its claim carries the hash of the name.
VISION_CLAIM = "lab-dlhub-group-vision-lab---d5c81e62"


def as_table(pair):
    volumes, mounts = pair
    claims = {v["name"]: v["persistentVolumeClaim"] for v in volumes}
    assert [v["name"] for v in volumes] == [m["name"] for m in mounts]
    return {
        m["mountPath"]: (
            claims[m["name"]]["claimName"],
            m["readOnly"],
            claims[m["name"]]["readOnly"],
        )
        for m in mounts
    }


def test_member_gets_their_group_volume_read_write():
    table = as_table(volume_mounts(volumes_cfg(TEAMS), ["ml-team"], "lab-dlhub"))
    assert table == {
        "/home/jovyan/datasets": ("lab-dlhub-datasets", True, True),
        "/home/jovyan/shared": ("lab-dlhub-shared", False, False),
        "/home/jovyan/groups/ml-team": ("lab-dlhub-group-ml-team", False, False),
        # others: read
        "/data/vision": (VISION_CLAIM, True, True),
    }


def test_non_member_gets_read_only_or_nothing():
    table = as_table(volume_mounts(volumes_cfg(TEAMS), ["Vision_Lab", "secret"], "lab-dlhub"))
    assert table == {
        "/home/jovyan/datasets": ("lab-dlhub-datasets", True, True),
        "/home/jovyan/shared": ("lab-dlhub-shared", False, False),
        "/data/vision": (VISION_CLAIM, False, False),
        # a configured source names the claim
        "/home/jovyan/groups/secret": ("nfs-secret", False, False),
    }
    nobody = as_table(volume_mounts(volumes_cfg(TEAMS), [], "lab-dlhub"))
    assert set(nobody) == {"/home/jovyan/datasets", "/home/jovyan/shared", "/data/vision"}


def test_sources_mounts_and_disabled_volumes():
    cfg = volumes_cfg(
        {
            "datasets": {"source": "corpora", "mount": "/datasets"},
            "shared": {"enabled": False},
        }
    )
    assert as_table(volume_mounts(cfg, [], "x")) == {"/datasets": ("corpora", True, True)}


def test_volume_names_are_dns_labels():
    cfg = volumes_cfg({"groups": [{"group": "A" * 63}, {"group": "x.y_z"}]})
    volumes, _ = volume_mounts(cfg, ["A" * 63, "x.y_z"], "lab-dlhub")
    for volume in volumes:
        name = volume["name"]
        assert len(name) <= 63 and name == name.lower() and name.replace("-", "").isalnum()
    assert len({v["name"] for v in volumes}) == len(volumes)


def test_claim_slug_keeps_dns_labels_and_hashes_the_rest():
    assert claim_slug("lab-dlhub", "ml-team") == "ml-team"
    # the names that once shared a claim: each its own now
    slugs = {claim_slug("lab-dlhub", g) for g in ("ML_Team", "ml.team", "ml_team", "ml-team")}
    assert len(slugs) == 4
    assert re.fullmatch(r"ml-team---[0-9a-f]{8}", claim_slug("lab-dlhub", "ML_Team"))
    assert group_claim("lab-dlhub", "x.y").startswith("lab-dlhub-group-x-y---")


def test_group_claims_fit_in_63_characters_with_the_longest_fullname():
    fullname = "f" * 40  # the chart cuts <fullname> at 40
    claims = {group_claim(fullname, g) for g in ("g" * 63, "g" * 62 + "h", "ml-team")}
    assert len(claims) == 3 and all(len(c) <= 63 for c in claims)


@pytest.mark.parametrize("name", ["home-lab", "jupyter-x"])
def test_a_release_named_like_users_objects_is_refused(name):
    with pytest.raises(KubernetesEnvError, match="starts like the names of users"):
        release_fullname({"DLHUB_RELEASE_FULLNAME": name})


# --- GPU placement --------------------------------------------------------------------------

LABEL = "nvidia.com/gpu.product"


def test_no_gpus_no_limit_no_node():
    assert gpu_placement([], LABEL) == ({}, {})


def test_whole_gpus_pin_the_node_and_product():
    selector, limits = gpu_placement(["node1/Tesla-T4/0", "node1/Tesla-T4/1"], LABEL)
    assert selector == {"kubernetes.io/hostname": "node1", LABEL: "Tesla-T4"}
    assert limits == {"nvidia.com/gpu": "2"}


def test_unlabelled_node_is_pinned_by_name_only():
    assert gpu_placement(["gpu-7//0"], LABEL) == (
        {"kubernetes.io/hostname": "gpu-7"},
        {"nvidia.com/gpu": "1"},
    )


def test_mig_instance_asks_for_its_resource():
    selector, limits = gpu_placement(["n2/A100-SXM4-40GB/mig-1g.5gb/3"], "x/product")
    assert selector == {"kubernetes.io/hostname": "n2", "x/product": "A100-SXM4-40GB"}
    assert limits == {"nvidia.com/mig-1g.5gb": "1"}


def test_a_lease_across_nodes_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="several nodes"):
        gpu_placement(["a/T4/0", "b/T4/0"], LABEL)


def test_ids_of_other_inventories_are_refused():
    with pytest.raises(ValueError, match="inventory: kubernetes"):
        parse_device("GPU-5c6e2a1b-0000")


def test_the_inventorys_ids_are_what_the_hub_reads():
    node = {
        "metadata": {"name": "gpu-1", "labels": {LABEL: "A100-SXM4-40GB"}},
        "status": {"allocatable": {"nvidia.com/gpu": "1", "nvidia.com/mig-2g.10gb": "2"}},
    }
    devices = devices_from_nodes([node], LABEL)
    placed = [gpu_placement([d.uuid], LABEL) for d in devices]
    assert [limits for _, limits in placed] == [
        {"nvidia.com/gpu": "1"},
        {"nvidia.com/mig-2g.10gb": "1"},
        {"nvidia.com/mig-2g.10gb": "1"},
    ]
    assert {selector["kubernetes.io/hostname"] for selector, _ in placed} == {"gpu-1"}
