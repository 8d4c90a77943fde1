"""Checklist item 7, name escaping: usernames and group names become the names of servers,
pods, home claims, containers, volumes, directories and group claims. Names that differ
only in case or punctuation, unicode names and names of 64 characters or more must give
distinct names that Kubernetes and Docker accept (DNS labels of at most 63 characters where
Kubernetes wants them), on every backend; and `dlhub check` refuses a config whose
volumes would share what they mount.

Pure: the spawners are made without a hub or a cluster (nothing is contacted), the names
come from the same code a running hub uses.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hub_config import config, mapping
from hub_config.__main__ import main as cli
from hub_config.config import ConfigError, validate
from hub_config.k8s_objects import group_claim
from hub_config.kubernetes import KubernetesSpawner
from hub_config.naming import dns_label, safe_slug
from hub_config.spawners import DockerSpawner
from hub_config.volumes import group_volume_name

#: RFC 1123 label: what Kubernetes requires of pod, claim and volume names.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: What Docker accepts as a container or volume name.
DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

#: Names that once collided or that a slug easily gets wrong.
TRICKY = [
    "ml-team",
    "ML_Team",
    "ml.team",
    "ml_team",
    "ML-TEAM",
    "alice",
    "Alice",
    "ALICE",
    "alice-",
    "alice--x",
    "alice---x",
    "-alice",
    "1alice",
    "a",
    "\u00e4lice",  # älice
    "a\u0308lice",  # the same, decomposed
    "\u7528\u6237",  # 用户
    "\u0130stanbul",
    "\u212aelvin",  # KELVIN SIGN
    "kelvin",
    "\U0001f600",
    "x" * 63,
    "x" * 64,
    "x" * 100,
    "x" * 99 + "y",
    "x" * 64 + "-",
]

#: What the chart gives the hub (nothing here is contacted).
CHART_ENV = {"DLHUB_RELEASE": "dlhub", "DLHUB_HUB_CONNECT_URL": "http://hub:8081"}


pytestmark = pytest.mark.usefixtures("kubeconfig")  # KubeSpawner reads it when made


def user(name: str):
    return SimpleNamespace(name=name, id=1, url=f"/user/{name}/", groups=[])


def kube_names(usernames) -> dict[str, tuple[str, str]]:
    """(pod, home claim) of each user's server, with the backend's own name templates."""
    cfg = validate({"backend": "kubernetes"})
    traits = mapping.traits_for(
        cfg, Path("/tmp/dlhub-names"), python=sys.executable, environ=CHART_ENV
    )["KubernetesSpawner"]
    templates = {k: traits[k] for k in ("pod_name_template", "pvc_name_template")}

    async def made():
        out = {}
        for name in usernames:
            spawner = KubernetesSpawner(
                _mock=True, user=user(name), namespace="dlhub", **templates
            )
            out[name] = (spawner.pod_name, spawner.pvc_name)
        return out

    return asyncio.run(made())


def docker_names(usernames) -> dict[str, tuple[str, str]]:
    """(container, home volume) of each user's server, with the backend's own traits."""
    cfg = validate({"backend": "docker"})
    traits = mapping.traits_for(
        cfg, Path("/tmp/dlhub-names"), python=sys.executable, docker_gateway="172.17.0.1"
    )
    spawner_traits = traits["DockerSpawner"]
    assert not traits["JupyterHub"].get("allow_named_servers"), "one server per user"
    (home_template,) = spawner_traits["home_volumes"]
    out = {}
    for name in usernames:
        spawner = DockerSpawner(
            user=user(name),
            prefix=spawner_traits["prefix"],
        )
        out[name] = (spawner.object_name, spawner.format_volume_name(home_template, spawner))
    return out


def test_kubernetes_pods_and_home_claims_are_distinct_dns_labels():
    names = kube_names(TRICKY)
    pods = [pod for pod, _ in names.values()]
    claims = [claim for _, claim in names.values()]
    assert len(set(pods)) == len(TRICKY) and len(set(claims)) == len(TRICKY)
    for name in pods + claims:
        assert DNS_LABEL.match(name) and len(name) <= 63, name
    # a name that is already safe stays readable; the others carry a hash of the original
    assert names["alice"] == ("jupyter-alice", "home-alice")
    assert re.fullmatch(r"jupyter-alice---[0-9a-f]{8}", names["Alice"][0])


def test_docker_containers_and_home_volumes_are_distinct_valid_names():
    names = docker_names(TRICKY)
    containers = [c for c, _ in names.values()]
    homes = [h for _, h in names.values()]
    assert len(set(containers)) == len(TRICKY) and len(set(homes)) == len(TRICKY)
    for name in containers + homes:
        assert DOCKER_NAME.match(name) and len(name) <= 80, name
    assert names["alice"] == ("dlhub-alice", "dlhub-home-alice")


def test_local_directories_are_distinct_and_stay_inside():
    dirs = [safe_slug(name) for name in [*TRICKY, "..", ".", "../x", "a/b", "a/../b"]]
    assert len(set(dirs)) == len(dirs)
    for name in dirs:
        assert re.fullmatch(r"[a-z0-9-]{1,63}", name) and name not in (".", ".."), name


def test_group_volumes_and_claims_are_distinct_dns_labels():
    volumes = [group_volume_name(g) for g in TRICKY]
    claims = [group_claim("dlhub", g) for g in TRICKY]
    longest = [group_claim("f" * 40, g) for g in TRICKY]  # the chart's longest <fullname>
    for names in (volumes, claims, longest):
        assert len(set(names)) == len(TRICKY)
        for name in names:
            assert DNS_LABEL.match(name) and len(name) <= 63, name
    # the three groups of the issue each have their own claim now
    trio = {group_claim("dlhub", g) for g in ("ML_Team", "ml.team", "ml-team")}
    assert len(trio) == 3 and "dlhub-group-ml-team" in trio


# JupyterHub's user and group names are never empty
@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=120), st.text(min_size=1, max_size=120))
def test_any_two_names_give_distinct_dns_labels(a, b):
    for slug in (
        lambda n: dns_label(n),
        lambda n: dns_label(n, 16),
        lambda n: group_claim("f" * 40, n),
        group_volume_name,
    ):
        x, y = slug(a), slug(b)
        assert DNS_LABEL.match(x) and len(x) <= 63, (a, x)
        if a != b:
            assert x != y, (a, b, x)


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=120), st.text(min_size=1, max_size=120))
def test_any_two_usernames_give_distinct_pods(a, b):
    names = kube_names([a, b] if a != b else [a])
    for pod, claim in names.values():
        assert DNS_LABEL.match(pod) and DNS_LABEL.match(claim), (pod, claim)
    if a != b:
        assert names[a] != names[b] and names[a][0] != names[b][0]


# --- dlhub check ------------------------------------------------------------------------------


def write(tmp_path, cfg: dict) -> str:
    path = tmp_path / "dlhub.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def dlhub_check(tmp_path, capsys, cfg: dict) -> tuple[int, str]:
    """`dlhub check FILE` (its exit status, its stderr), in this process."""
    try:
        code = cli(["check", write(tmp_path, cfg)])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def with_groups(*groups: dict, backend: str = "local", **volumes) -> dict:
    return {"backend": backend, "volumes": {"groups": list(groups), **volumes}}


SHARED_X = {"source": "/srv/x"}


@pytest.mark.parametrize(
    "cfg, key, says",
    [
        (
            with_groups({"group": "a", **SHARED_X}, {"group": "b", **SHARED_X}),
            "volumes.groups[1].source",
            "is already the source of volumes.groups[0]",
        ),
        (
            with_groups({"group": "a", **SHARED_X}, shared=SHARED_X),
            "volumes.groups[0].source",
            "is already the source of volumes.shared",
        ),
        (
            with_groups({"group": "a", "source": "dlhub-home-alice"}, backend="docker"),
            "volumes.groups[0].source",
            "named like a user's home",
        ),
        (
            with_groups({"group": "a", "source": "home-alice"}, backend="kubernetes"),
            "volumes.groups[0].source",
            "named like a user's home",
        ),
        (
            with_groups(
                {"group": "a", "source": "dlhub-group-b"}, {"group": "b"}, backend="docker"
            ),
            "volumes.groups[0].source",
            "is dlhub's own volume 'group-b'",
        ),
        (
            with_groups({"group": "ml-team"}, {"group": "ml-team"}),
            "volumes.groups[1].group",
            "already has a volume",
        ),
        (
            {"profiles": [{"name": "cpu"}, {"name": "cpu"}]},
            "profiles[1].name",
            "duplicate profile name",
        ),
    ],
)
def test_dlhub_check_refuses_volumes_that_would_share_what_they_mount(
    tmp_path, capsys, cfg, key, says
):
    code, err = dlhub_check(tmp_path, capsys, cfg)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert f": {key}: " in line and says in line, line


def test_dlhub_check_accepts_groups_that_differ_only_in_case_and_punctuation(tmp_path):
    """The command itself: the config of the issue's three groups is fine now."""
    groups = [{"group": g} for g in ("ML_Team", "ml.team", "ml-team", "ml_team")]
    path = write(tmp_path, {"backend": "kubernetes", "volumes": {"groups": groups}})
    result = subprocess.run(
        [sys.executable, "-m", "hub_config", "check", "--get", "volumes.groups", path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [g["group"] for g in json.loads(result.stdout)] == [g["group"] for g in groups]


def test_dlhub_check_refuses_groups_whose_derived_names_would_collide(monkeypatch):
    """The guard behind the slugs: were a slug lossy (as the old claim names were), the
    config is refused with the key of the second group."""
    import hub_config.naming
    import hub_config.volumes

    def lossy(name, max_length=63):
        return re.sub(r"[^a-z0-9-]", "-", name.lower())[:max_length]

    monkeypatch.setattr(hub_config.naming, "dns_label", lossy)
    monkeypatch.setattr(hub_config.volumes, "group_volume_name", lambda g: "group-" + lossy(g))
    groups = [{"group": "ml-team"}, {"group": "ML_Team"}]
    with pytest.raises(ConfigError) as refused:
        config.validate({"backend": "kubernetes", "volumes": {"groups": groups}})
    assert refused.value.key == "volumes.groups[1].group"
    assert "would get the volume group-ml-team of volumes.groups[0].group" in str(refused.value)
