"""What the parts of tools/kube_cluster.py share: the cluster's addresses, its error,
its output, running commands and the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import shlex
import subprocess
from pathlib import Path

import host

NODE_NAME = "node1"
NODE_IP = "172.17.0.1"  # the docker0 bridge: where pods reach the host
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service
POD_CIDR = "172.17.0.0/16"  # pods get docker-bridge addresses (no network plugin)
APISERVER_PORT = 6443  # used when free, else any free port
CLUSTER_DOMAIN = "cluster.local"
STORAGE_CLASS = "standard"


class ClusterError(RuntimeError):
    """The cluster could not be built or started; the message says what to do."""


@contextlib.contextmanager
def host_errors_as_cluster_errors():
    """Raise what tools/host.py reports about this machine as a ClusterError."""
    try:
        yield
    except host.HostError as e:
        raise ClusterError(str(e)) from e


def say(message: str) -> None:
    print(f"==> kubernetes: {message}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([str(c) for c in cmd], **kw)


def quiet(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Run `cmd` capturing its output; on failure raise ClusterError with the output's tail."""
    result = run(cmd, check=False, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ClusterError(f"`{shlex.join(map(str, cmd))}` failed ({result.returncode}):\n{tail}")
    return result


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on `path` (so two builds or starts do not run at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
