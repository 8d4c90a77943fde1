"""What the chaos modules share besides fixtures (tests/chaos/conftest.py): the world of
users at work (:class:`World`), the records of measured times, and process helpers.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from dockertest import docker_section
from gputest import SchedulerClient, gpu_hub_config
from hub_config.managed_services import cmdline
from hubtest import RunningHub, start_server, token_api, wait_for

#: ``(scenario, what, value, unit)`` measured by the chaos modules, in the order taken
RECORDS: list[tuple[str, str, float, str]] = []

#: the users whose servers run in a world; the first holds the GPU (where it can)
RUNNING = ["ana", "ben", "cho", "dan", "eve"]
#: the user waiting in the GPU queue
QUEUED = "quinn"

PROFILES = [
    {"name": "cpu", "display_name": "CPU", "cpu_limit": 1, "mem_limit": "1G", "default": True},
    {"name": "gpu", "display_name": "One GPU", "cpu_limit": 1, "mem_limit": "1G", "gpus": 1},
]


def record(scenario: str, what: str, seconds: float, unit: str = "s") -> float:
    """Keep a measured time (or, with another ``unit``, a count) for the session's
    summary; returns ``seconds``."""
    RECORDS.append((scenario, what, round(float(seconds), 2), unit))
    return seconds


def measure(predicate, timeout: float, what: str, interval: float = 0.1) -> float:
    """Seconds from now until ``predicate()`` is true (``hubtest.wait_for``'s errors)."""
    started = time.monotonic()
    wait_for(predicate, timeout, interval=interval, what=what)
    return time.monotonic() - started


def pids_of(*words: str) -> list[int]:
    """Live processes (not zombies) whose command line holds every one of ``words``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        line = " ".join(cmdline(int(entry.name)))
        if line and all(w in line for w in words) and not _zombie(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


class World:
    """A running hub with work going on (see the module docstring)."""

    def __init__(self, hub: RunningHub, backend: str, admin_token: str, gpus: bool):
        self.hub = hub
        self.backend = backend
        self.admin_token = admin_token
        self.scheduler = SchedulerClient(hub)
        self.tokens: dict[str, str] = {}
        self.running = list(RUNNING)
        self.gpu_holder: str | None = RUNNING[0] if gpus else None
        self.queued: str | None = QUEUED if gpus else None

    # --- the hub's view -----------------------------------------------------------

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return token_api(self.hub.url, self.admin_token, method, "/hub/api" + path, **kw)

    def server(self, user: str) -> dict | None:
        """``user``'s default server as the hub's API shows it (None: none)."""
        r = self.api("GET", f"/users/{user}")
        r.raise_for_status()
        return r.json()["servers"].get("")

    def reachable(self, user: str) -> bool:
        """Whether ``user``'s server answers through the proxy (its API's status)."""
        r = token_api(self.hub.url, self.tokens[user], "GET", f"/user/{user}/api/status")
        return r.status_code == 200

    def all_reachable(self) -> bool:
        try:
            return all(self.reachable(u) for u in self.running)
        except requests.RequestException:
            return False

    def hub_answers(self) -> bool:
        try:
            return self.api("GET", "/").status_code == 200
        except requests.RequestException:
            return False

    # --- the GPU scheduler's view -------------------------------------------------

    def gpu_state(self) -> dict:
        """The leases ``(id, user, devices)`` and the queue ``(request id, user, place)``."""
        state = self.scheduler.state(self.admin_token)
        leases = sorted(
            (x["id"], x["user"], tuple(d["uuid"] for d in x["devices"])) for x in state["leases"]
        )
        waiting = sorted(state["waiting"], key=lambda x: x["position"])
        queue = [(x["id"], x["user"], x["position"]) for x in waiting]
        return {"leases": leases, "queue": queue}

    def process_pids(self) -> dict[str, list[int]]:
        """The live processes of this hub's parts by name: hub, proxy, gpu-scheduler,
        idle-culler (found by their command lines and the hub's data dir)."""
        config = str(self.hub.config_file)
        port = str(self.hub.config["hub"]["proxy_api_port"])
        return {
            "hub": [p for p in pids_of("jupyterhub", "-f") if _env_has(p, config)],
            "proxy": pids_of("configurable-http-proxy", f"--api-port {port}"),
            "gpu-scheduler": [p for p in pids_of("-m gpu_scheduler") if _env_has(p, config)],
            "idle-culler": [p for p in pids_of("jupyterhub_idle_culler") if _env_has(p, config)],
        }


def _env_has(pid: int, value: str) -> bool:
    """Whether the environment of ``pid`` holds ``value`` (our hub's config file)."""
    try:
        return value.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def world_config(backend: str, names: dict | None) -> dict:
    config = {
        # one GPU; a waiting server waits for an hour; the scheduler checks every 5 s
        **gpu_hub_config(PROFILES, count=1, max_wait=3600, check_every=5),
        "backend": backend,
        # the culler runs (a managed service) but culls nobody during the suite
        "culling": {"enabled": True, "timeout": 3600, "every": 600},
    }
    if names:
        config["docker"] = docker_section(names)
    return config


def start_world(hub: RunningHub, backend: str, gpus: bool) -> World:
    world = World(hub, backend, hub.admin().new_token("chaos"), gpus)
    for user in [*world.running, QUEUED]:
        r = world.api("POST", f"/users/{user}", json={})
        assert r.status_code == 201, r.text
        r = world.api("POST", f"/users/{user}/tokens", json={"note": "chaos"})
        assert r.status_code == 201, r.text
        world.tokens[user] = r.json()["token"]
    for user in world.running:
        profile = "gpu" if user == world.gpu_holder else "cpu"
        start_server(hub.url, world.tokens[user], user, {"profile": profile}, timeout=180)
    if world.queued:
        r = token_api(
            hub.url,
            world.tokens[QUEUED],
            "POST",
            f"/hub/api/users/{QUEUED}/server",
            json={"profile": "gpu"},
        )
        assert r.status_code == 202, r.text

        def queued():
            return [user for _, user, _ in world.gpu_state()["queue"]] == [QUEUED]

        wait_for(queued, 60, what=f"{QUEUED} in the queue")
    return world
