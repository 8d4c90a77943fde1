"""Memory and CPU limits of local user servers, through Linux control groups.

When the hub runs as root, each server of the local backend gets a control group of its
own, ``dlhub/<account>`` (``dlhub/<account>.<server>`` for a named server,
:func:`group_name`), with the profile's ``mem_limit`` and ``cpu_limit``; the server
joins it before it runs (see ``LocalSpawner``), so every process it starts is in it too.
At stop, processes still left in it are killed and the group is removed.

Both layouts are handled: cgroup v2 (one tree, ``cgroup.controllers`` at the mount
point) and v1 (one tree per controller: ``memory/`` and ``cpu/``).
:func:`limit_files` is pure; :func:`detect`, :class:`ServerCgroup` are thin I/O.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "dlhub"
#: The CPU period (microseconds) over which ``cpu_limit`` cores' time is the quota.
CPU_PERIOD = 100_000


def limit_files(version: str, mem_limit: int | None, cpu_limit: float | None) -> dict:
    """What to write in a server's cgroup: ``{controller: [(file, value), ...]}`` in order.

    ``version`` is ``"v1"`` (keys are the controller trees) or ``"v2"`` (one key, ``""``).
    A limit of 0 or None writes no limit. Swap is not a way around the memory limit. For
    v1 the limit with swap is lifted first: it may never be below the memory limit.
    """
    mem = int(mem_limit) if mem_limit else 0
    quota = max(1000, round(float(cpu_limit) * CPU_PERIOD)) if cpu_limit else 0
    if version == "v2":
        files = [
            ("memory.max", str(mem) if mem else "max"),
            ("memory.swap.max", "0" if mem else "max"),
            ("cpu.max", f"{quota if quota else 'max'} {CPU_PERIOD}"),
        ]
        return {"": files}
    memory = [
        ("memory.memsw.limit_in_bytes", "-1"),
        ("memory.limit_in_bytes", str(mem) if mem else "-1"),
        ("memory.memsw.limit_in_bytes", str(mem) if mem else "-1"),
    ]
    cpu = [("cpu.cfs_period_us", str(CPU_PERIOD)), ("cpu.cfs_quota_us", str(quota or -1))]
    return {"memory": memory, "cpu": cpu}


@dataclass(frozen=True)
class Support:
    """What the machine allows: ``version`` is None when limits cannot be enforced."""

    version: str | None
    reason: str = ""


def detect(root: Path = ROOT, euid: int | None = None) -> Support:
    """Whether this process can give servers cgroups with memory and CPU limits: the
    parent group ``dlhub`` is made (with the memory and cpu controllers on cgroup v2), so
    that the answer is what happens, not a guess."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return Support(None, "the hub does not run as root")
    controllers = root / "cgroup.controllers"
    if controllers.exists():
        available = set(controllers.read_text().split())
        missing = {"memory", "cpu"} - available
        if missing:
            return Support(None, f"cgroup v2 lacks the {', '.join(sorted(missing))} controller")
        version, parents = "v2", [root, root / PARENT]
    elif (root / "memory" / "tasks").exists() and (root / "cpu" / "tasks").exists():
        version, parents = "v1", [root / "memory" / PARENT, root / "cpu" / PARENT]
    else:
        return Support(None, f"no memory and cpu cgroup controllers under {root}")
    try:
        for directory in parents:
            directory.mkdir(exist_ok=True)
            if version == "v2":
                control = directory / "cgroup.subtree_control"
                if not {"memory", "cpu"} <= set(control.read_text().split()):
                    control.write_text("+memory +cpu")
    except OSError as e:
        return Support(None, f"cannot make cgroups under {root} ({e.strerror or e})")
    return Support(version)


def group_name(account: str, server: str) -> str:
    """The group of a server under ``dlhub/``: its account's name for the user's default
    server, ``<account>.<server>`` for a named one (each server is limited on its own).
    Neither account names nor server names hold a ``.``, so two servers never share one."""
    return f"{account}.{server}" if server else account


class CgroupError(RuntimeError):
    """A server's cgroup could not be made or joined; the message says which and why."""


class ServerCgroup:
    """The cgroup (v2) or cgroups (v1, one per controller) of one server."""

    def __init__(self, version: str, name: str, root: Path = ROOT):
        self.version = version
        self.root = Path(root)
        if version == "v2":
            self.dirs = {"": self.root / PARENT / name}
        else:
            self.dirs = {c: self.root / c / PARENT / name for c in ("memory", "cpu")}

    def create(self, mem_limit: int | None, cpu_limit: float | None) -> None:
        """Make the group (again) with these limits (after :func:`detect`)."""
        try:
            for controller, files in limit_files(self.version, mem_limit, cpu_limit).items():
                directory = self.dirs[controller]
                directory.mkdir(parents=True, exist_ok=True)
                for name, value in files:
                    path = directory / name
                    if path.exists():
                        path.write_text(value)
        except OSError as e:
            raise CgroupError(f"could not set up the cgroup {self.dirs}: {e}") from e

    def join(self, pid: int) -> None:
        """Put ``pid`` in the group (call from the server's process before it runs)."""
        for directory in self.dirs.values():
            with open(directory / "cgroup.procs", "w") as f:
                f.write(str(pid))

    def pids(self) -> set[int]:
        found = set()
        for directory in self.dirs.values():
            try:
                found |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
            except FileNotFoundError:
                pass
        return found

    def remove(self, timeout: float = 5) -> None:
        """Kill what is left in the group, then remove it."""
        deadline = time.monotonic() + timeout
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for directory in self.dirs.values():
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
