"""The size of a server's ``/dev/shm`` (shared memory), from its profile's ``shm_size``.

Data loaders with worker processes (PyTorch's ``DataLoader``, ``multiprocessing``'s shared
memory) pass batches through ``/dev/shm``; Docker gives a container 64 MiB there, and a
worker filling a larger block dies with SIGBUS. Each profile sets ``shm_size``; unset
(null), it is half the profile's ``mem_limit``. The space is memory: what is written there
counts against the server's memory limit on Docker and Kubernetes alike.

- Docker: the container's ``shm_size`` (:func:`docker_host_config`);
- Kubernetes: a memory-backed ``emptyDir`` mounted at ``/dev/shm`` with that
  ``sizeLimit`` (:func:`hub_config.k8s_objects.shm_volume`);
- local: the host's ``/dev/shm``, shared by every process of the machine (nothing set).
"""

from __future__ import annotations

import re

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGT]?)$")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

#: Never less than Docker's own default (64 MiB).
MINIMUM = 64 * 1024**2


def parse_size(value) -> int:
    """Bytes of a size as the platform config writes them (``512M``, ``1.5G``, ``1024``),
    in binary units, as JupyterHub reads ``mem_limit``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"not a size: {value!r} (a number with an optional K, M, G or T)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def shm_bytes(profile: dict) -> int:
    """The ``/dev/shm`` size of a server of ``profile``, in bytes: its ``shm_size``, else
    half its ``mem_limit``; at least :data:`MINIMUM`."""
    size = profile.get("shm_size")
    if size is None:
        size = parse_size(profile.get("mem_limit") or "4G") // 2
    return max(parse_size(size), MINIMUM)


def docker_host_config(configured: dict, profile: dict) -> dict:
    """DockerSpawner's ``extra_host_config`` with this profile's ``shm_size`` (bytes)."""
    return {**configured, "shm_size": shm_bytes(profile)}
