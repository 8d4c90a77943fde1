"""The Kubernetes objects of a user's server, from pure builders (hub_config.k8s_objects):
names the chart agrees with, shared volumes as claims, and where a GPU lease puts a pod (no
cluster, no KubeSpawner)."""

import re

import pytest

from gpu_scheduler.contract import parse_device
from gpu_scheduler.inventory import devices_from_nodes
from hub_config.config import validate
from hub_config.k8s_objects import (
    HOME,
    chart_fullname,
    claim_slug,
    gpu_placement,
    group_claim,
    home_volume,
    listed,
    volume_mounts,
)


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


def test_the_home_is_the_servers_own_claim():
    volumes, mounts = home_volume()
    assert volumes == [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    assert mounts == [{"name": "home", "mountPath": HOME}]


def test_listed_reads_kubespawners_list_or_dict_traits():
    assert listed([{"name": "a"}]) == [{"name": "a"}]
    assert listed({"b": {"name": "b"}, "a": {"name": "a"}}) == [{"name": "a"}, {"name": "b"}]


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
