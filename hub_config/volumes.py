"""Shared data volumes: which a user gets, where, and whether read-only (pure).

The platform config's ``volumes`` section declares a read-only ``datasets`` volume, a
read-write ``shared`` one and group volumes. :func:`for_user` decides, from a user's
JupyterHub groups at the time of a start, what that user's server mounts; the backends
render the result (local: links to directories; docker: named volumes or host paths;
kubernetes: claims).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from .naming import safe_slug


@dataclass(frozen=True)
class Mount:
    """One shared volume in one user's server."""

    #: the volume's own name: ``datasets``, ``shared`` or ``group-<group slug>``
    name: str
    #: configured source (a host path, volume or claim name); empty: dlhub's own
    source: str
    #: where it appears: relative to the user's home, or absolute
    target: str
    read_only: bool


def group_volume_name(group: str) -> str:
    return f"group-{safe_slug(group, 57)}"


def declared(volumes: dict) -> list[Mount]:
    """Every declared volume, as a member of every group would get it."""
    return for_user(volumes, [v["group"] for v in volumes["groups"]])


def for_user(volumes: dict, groups) -> list[Mount]:
    """The volumes of a user in ``groups``: datasets (read-only), shared, their groups'
    volumes (read-write), and other groups' volumes read-only where ``others: read``."""
    groups = set(groups)
    out = []
    if volumes["datasets"]["enabled"]:
        d = volumes["datasets"]
        out.append(Mount("datasets", d["source"], d["mount"], read_only=True))
    if volumes["shared"]["enabled"]:
        s = volumes["shared"]
        out.append(Mount("shared", s["source"], s["mount"], read_only=False))
    for v in volumes["groups"]:
        member = v["group"] in groups
        if not member and v["others"] == "none":
            continue
        target = v["mount"] or f"groups/{v['group']}"
        out.append(Mount(group_volume_name(v["group"]), v["source"], target, not member))
    return out


def target_path(mount: Mount, home: str) -> str:
    """The absolute path of ``mount`` in a server whose home is ``home``."""
    if mount.target.startswith("/"):
        return posixpath.normpath(mount.target)
    return posixpath.normpath(posixpath.join(home, mount.target))


def docker_volume(mount: Mount, prefix: str) -> str:
    """The docker source of ``mount``: the configured host path or volume, or
    ``<prefix>-<name>``."""
    return mount.source or f"{prefix}-{mount.name}"


def docker_binds(mounts: list[Mount], prefix: str, home: str) -> dict[str, dict]:
    """DockerSpawner ``volumes`` entries: {source: {"bind": path, "mode": "ro"|"rw"}}."""
    return {
        docker_volume(m, prefix): {
            "bind": target_path(m, home),
            "mode": "ro" if m.read_only else "rw",
        }
        for m in mounts
    }
