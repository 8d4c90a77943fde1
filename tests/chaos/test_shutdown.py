"""Ctrl-C on ``dlhub up`` (what ``make up`` runs): the hub, its proxy, its services (the
GPU scheduler, the idle culler) and, on the local backend, the servers it started all end
within 5 s, and nothing prints a traceback. The docker backend leaves users' containers
running by design and its banner says so.

Ctrl-C in a terminal sends SIGINT to the foreground process group; the hub's children run
in sessions of their own, so the hub alone gets it, as here.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
from chaoskit import PROFILES, cmdline

from dockertest import USER_IMAGE, docker_names, docker_section, user_container
from gputest import gpu_hub_config
from hubtest import docker_engine_with, remove_docker_objects, start_server

pytestmark = pytest.mark.chaos

DLHUB = str(Path(sys.executable).parent / "dlhub")
#: what Ctrl-C may take, hub and everything it started
STOP_SECONDS = 5


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def ctrl_c(hub, record, scenario: str) -> tuple[float, list[int]]:
    """SIGINT to the hub as a terminal's Ctrl-C; the seconds until it exited and the
    processes it had started that are still alive then."""
    below = descendants(hub.proc.pid)
    assert below, "the hub started no process"
    hub.proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    code = hub.proc.wait(60)
    took = record(scenario, "Ctrl-C to the hub's exit", time.monotonic() - started)
    assert code == 0, hub.log()[-3000:]
    time.sleep(0.5)  # what a process does after its parent exited
    return took, [pid for pid in below if cmdline(pid)]


def test_ctrl_c_stops_hub_services_and_servers_within_5s_local(hub_factory, chaos_record):
    config = {**gpu_hub_config(PROFILES, count=1), "culling": {"enabled": True}}
    hub = hub_factory(config, name="ctrlc-local", start=False)
    hub.start(timeout=90, command=[DLHUB, "up"])
    admin = hub.admin().new_token("ctrl-c")
    start_server(hub.url, admin, "admin", {"profile": "gpu"}, timeout=120)
    took, left = ctrl_c(hub, chaos_record, "local: Ctrl-C with a GPU server")
    assert not left, [(pid, cmdline(pid)) for pid in left]
    assert took <= STOP_SECONDS
    log = hub.log()
    assert "Traceback" not in log, log[log.find("Traceback") - 2000 :][:5000]
    assert "Ctrl-C stops the hub, its proxy, its services and users' servers." in log


def test_ctrl_c_leaves_containers_running_and_says_so_docker(hub_factory, chaos_record):
    engine = docker_engine_with(USER_IMAGE)
    names = docker_names("dls", "dlhub-stop")
    config = {
        **gpu_hub_config(PROFILES, count=1),
        "backend": "docker",
        "docker": docker_section(names),
        "culling": {"enabled": True},
    }
    hub = hub_factory(config, name="ctrlc-docker", start=False)
    try:
        hub.start(timeout=90, command=[DLHUB, "up"])
        admin = hub.admin().new_token("ctrl-c")
        start_server(hub.url, admin, "admin", {"profile": "cpu"}, timeout=120)
        took, left = ctrl_c(hub, chaos_record, "docker: Ctrl-C with a server")
        assert not left, [(pid, cmdline(pid)) for pid in left]
        assert took <= STOP_SECONDS
        log = hub.log()
        assert "Traceback" not in log, log[log.find("Traceback") - 2000 :][:5000]
        assert "users' containers keep running (by design)" in log
        assert user_container(engine, names, "admin").status == "running"
    finally:
        hub.stop()
        remove_docker_objects(engine, names["prefix"], names["network"])
