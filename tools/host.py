"""What the tools need from this machine: Debian packages, the Docker engine, processes.

One home for the helpers that tools/docker_engine.py, tools/kube_cluster.py (with its
kube_* modules), tools/images.py and tools/system_packages.py share. The tools run as
``python3 tools/<tool>.py``, so this module is their sibling import (``import host``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path


class HostError(RuntimeError):
    """This machine lacks something a tool needs; the message says what to do."""


# --- Debian packages --------------------------------------------------------------------------


def apt_env() -> dict:
    return dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def apt(command: list[str]) -> None:
    """Run an apt-get command quietly; HostError with the output's tail when it fails."""
    result = subprocess.run(
        command,
        env=apt_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise HostError(f"`{' '.join(command)}` failed ({result.returncode}):\n{tail}")


def apt_update() -> None:
    apt(["apt-get", "update", "-q"])


def apt_install(packages: list[str], *, recommends: bool = False) -> None:
    """Install Debian packages (as root); when installing fails, update the lists and retry."""
    if os.geteuid() != 0:
        raise HostError(
            f"{', '.join(packages)} missing; run as root or install them: "
            f"apt-get install {' '.join(packages)}"
        )
    command = ["apt-get", "install", "-y", "-q"]
    if not recommends:
        command.append("--no-install-recommends")
    command.extend(packages)
    try:
        apt(command)
    except HostError:
        apt_update()
        apt(command)


# --- the Docker engine ------------------------------------------------------------------------


def docker_works() -> bool:
    """Whether `docker info` answers (an engine runs and this user may use it)."""
    if not shutil.which("docker"):
        return False
    try:
        result = subprocess.run(
            ["docker", "info"], capture_output=True, timeout=15, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def image_exists(name: str) -> bool:
    result = subprocess.run(
        ["docker", "image", "inspect", name], capture_output=True, stdin=subprocess.DEVNULL
    )
    return result.returncode == 0


# --- processes and ports ----------------------------------------------------------------------


def read_pid(path: Path) -> int | None:
    """The pid written in a pid file; None when there is none."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def program(pid: int) -> str | None:
    """The program name (argv[0]'s basename) of a live process, None if gone or a zombie.

    Right after an exec the kernel can show an empty command line for a moment; the
    executable's path then names the program."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        if not argv0:
            argv0 = os.readlink(f"/proc/{pid}/exe").encode()
    except OSError:
        return None
    return os.path.basename(argv0.decode(errors="replace")) or None


def processes_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and program(int(entry.name)) == name:
            pids.append(int(entry.name))
    return pids


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
