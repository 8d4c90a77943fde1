"""The Kubernetes objects of a user's server, built by pure functions (no cluster, no
KubeSpawner): what :class:`hub_config.kubernetes.KubernetesSpawner` puts in its pods and
what the Helm chart must agree with. A unit test compares each with dicts
(``tests/unit/test_k8s_objects.py``).

- names: :func:`chart_fullname`, :func:`group_claim` (the chart's claim of a group volume),
  and the name templates of users' pods and home claims;
- :func:`volume_mounts`: the shared volumes a user's pod mounts (claims made by the chart),
  read-write or read-only by the user's groups at this start;
- :func:`gpu_placement`: the extended-resource limits and the node selector of a lease's
  devices, whose ids the scheduler's Kubernetes inventory makes
  (:func:`gpu_scheduler.contract.parse_device`).

The server's token Secret is built by :mod:`hub_config.token_secret`.
"""

from __future__ import annotations

from collections import Counter

from gpu_scheduler.contract import parse_device

from . import naming, volumes

#: Where the user images keep the user's home (the image's user is jovyan, uid 1000).
HOME = "/home/jovyan"
UID = 1000
GID = 100  # the image's `users` group, which owns /opt/venv and the home

#: The node label every kubelet sets to its node's name.
HOSTNAME_LABEL = "kubernetes.io/hostname"

#: The names of a server's pod (KubeSpawner's safe ``{user_server}`` slug: one pod per
#: server, named ones included) and of the user's home claim (the safe ``{username}``
#: slug: every server of a user mounts the same home; for the default server both slugs
#: are the same).
POD_NAME_TEMPLATE = "jupyter-{user_server}"
PVC_NAME_TEMPLATE = "home-{username}"
#: How the names of users' pods and home claims begin; the chart's object names must not.
USER_OBJECT_PREFIXES = ("jupyter-", "home-")


def chart_fullname(release: str, chart: str = "dlhub") -> str:
    """The chart's ``<fullname>`` for a release, as its ``dlhub.fullname`` helper makes it
    (without ``nameOverride``/``fullnameOverride``: those set DLHUB_RELEASE_FULLNAME)."""
    name = release if chart in release else f"{release}-{chart}"
    return name[:40].rstrip("-")


def claim_slug(fullname: str, group: str) -> str:
    """A group's name as it appears in its claim's name: :func:`hub_config.naming.dns_label`
    (KubeSpawner's safe slug), as long as ``<fullname>-group-<slug>`` stays within 63
    characters. ``ml-team`` stays ``ml-team``; ``ML_Team`` and ``ml.team`` become
    ``ml-team---<hash>`` with different hashes, so no two groups share a claim."""
    return naming.dns_label(group, naming.MAX_DNS_LABEL - len(f"{fullname}-group-"))


def group_claim(fullname: str, group: str) -> str:
    """The chart's claim of a group volume: ``<fullname>-group-<claim slug>``; the chart's
    ``dlhub.groupClaim`` makes the same name for ``sharedStorage.volumes[].name``."""
    return f"{fullname}-group-{claim_slug(fullname, group)}"


def home_volume() -> tuple[list[dict], list[dict]]:
    """The pod volume and container mount of the user's home: the server's own claim
    (KubeSpawner fills in ``{pvc_name}``)."""
    return (
        [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
        [{"name": "home", "mountPath": HOME}],
    )


def volume_mounts(
    cfg_volumes: dict, user_groups, fullname: str, home: str = HOME
) -> tuple[list[dict], list[dict]]:
    """The pod volumes and container mounts of the platform's shared volumes for one user.

    ``cfg_volumes`` is the validated ``volumes`` section; ``user_groups`` the names of the
    user's JupyterHub groups now. Which volumes, where and how (read-only or not) is
    :func:`hub_config.volumes.for_user`, as on the other backends. Each is a claim:
    ``source`` when set, else the chart's ``<fullname>-datasets``, ``<fullname>-shared`` or
    ``<fullname>-group-<group>`` (:func:`group_claim`).
    """
    claims = {"datasets": f"{fullname}-datasets", "shared": f"{fullname}-shared"}
    for volume in cfg_volumes["groups"]:
        group = volume["group"]
        claims[volumes.group_volume_name(group)] = group_claim(fullname, group)
    pod_volumes, mounts = [], []
    for mount in volumes.for_user(cfg_volumes, user_groups):
        claim = {"claimName": mount.source or claims[mount.name], "readOnly": mount.read_only}
        # mount.name is a DNS label (volumes.group_volume_name), as volume names must be
        pod_volumes.append({"name": mount.name, "persistentVolumeClaim": claim})
        mounts.append(
            {
                "name": mount.name,
                "mountPath": volumes.target_path(mount, home),
                "readOnly": mount.read_only,
            }
        )
    return pod_volumes, mounts


def listed(value) -> list:
    """A KubeSpawner list-or-dict trait (``volumes``, ``volume_mounts``) as a list: a
    dict's values, by key."""
    if isinstance(value, dict):
        return [value[key] for key in sorted(value)]
    return list(value)


def gpu_placement(devices, product_label: str) -> tuple[dict[str, str], dict[str, str]]:
    """The node selector and resource limits that give a pod exactly the leased GPUs.

    The pod asks for as many of each resource as it was leased and is placed on the node
    that has them, with their product (when the node is labelled). No devices: nothing.
    """
    if not devices:
        return {}, {}
    parsed = [parse_device(uuid) for uuid in devices]
    nodes = sorted({d.node for d in parsed})
    if len(nodes) > 1:
        raise ValueError(
            f"the GPUs granted ({', '.join(devices)}) are on several nodes ({', '.join(nodes)}) "
            "and a pod runs on one; ask for fewer GPUs per server"
        )
    selector = {HOSTNAME_LABEL: nodes[0]}
    products = {d.product for d in parsed if d.product}
    if len(products) == 1:
        selector[product_label] = products.pop()
    counts = Counter(d.resource for d in parsed)
    return selector, {resource: str(n) for resource, n in sorted(counts.items())}


#: The pod volume that holds a server's ``/dev/shm``.
SHM_VOLUME = "dshm"


def shm_volume(size_bytes: int) -> tuple[list[dict], list[dict]]:
    """The pod volume and container mount of ``/dev/shm``: a memory-backed ``emptyDir`` of
    ``size_bytes`` (:func:`hub_config.shm.shm_bytes`; it counts against the pod's memory
    limit). Without it a pod's ``/dev/shm`` is the runtime's 64 MiB."""
    return (
        [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": str(size_bytes)}}],
        [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}],
    )
