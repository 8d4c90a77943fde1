"""Faults of the hub's own parts while users work (tests/chaos/conftest.py: ``world``, five
servers running, one holding the GPU's lease, one user queued for it): the proxy, the GPU
scheduler and the hub itself killed with SIGKILL.

Each scenario asserts what survived and records how long recovery took. Every test runs
on the docker backend and on the local one (where servers are processes, and where a
server can hold a GPU lease on this host: the docker engine here has no NVIDIA runtime).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import requests
from chaoskit import cmdline, kill9, measure, pids_of

from hub_config.gpu import SCHEDULER_DOWN
from hubtest import token_api

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.parametrize("world", ["docker", "local"], indirect=True),
]


def read_pid(path) -> int:
    return int(path.read_text().strip())


def environ_of(pid: int) -> dict[str, str]:
    from pathlib import Path

    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {k: v for k, _, v in pairs}


def services(world) -> dict[str, list[int]]:
    """The live processes of the world's managed services: their supervisors and the
    services themselves, by name."""
    data = str(world.hub.data_dir)
    found = {}
    for name, module in (
        ("gpu-scheduler", "gpu_scheduler"),
        ("idle-culler", "jupyterhub_idle_culler"),
    ):
        supervisors = pids_of("hub_config.supervisor", f"{data}/services/{name}.pid")
        found[f"{name} supervisor"] = supervisors
        found[name] = [p for p in pids_of(f"-m {module}") if ppid_of(p) in supervisors]
    return found


def ppid_of(pid: int) -> int:
    from pathlib import Path

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def one_each(world) -> dict[str, int]:
    """Exactly one live process of each managed service and its supervisor; their pids."""
    found = services(world)
    assert all(len(pids) == 1 for pids in found.values()), found
    return {name: pids[0] for name, pids in found.items()}


def scheduler_answers(world) -> bool:
    try:
        world.gpu_state()
        return True
    except (AssertionError, requests.RequestException):
        return False


def servers_snapshot(world) -> dict[str, tuple]:
    """Each running user's server as the hub knows it: ready, and what it runs as."""
    out = {}
    for user in world.running:
        server = world.server(user)
        state = server["state"] if server else {}
        ident = state.get("object_id") or state.get("pid")
        out[user] = (bool(server and server["ready"]), ident, state.get("gpu_lease"))
    return out


def servers_alive(world, servers: dict[str, tuple]) -> bool:
    """Whether the containers (docker) or processes (local) of ``servers`` still run."""
    if world.backend == "docker":
        import docker

        engine = docker.from_env()
        states = [engine.containers.get(ident).status for _, ident, _ in servers.values()]
        return states == ["running"] * len(servers)
    return all(cmdline(int(ident)) for _, ident, _ in servers.values())


#: how often a user's page asks its server in the proxy scenario: a busy JupyterLab
#: (it polls its kernels and sessions every 10 s)
USER_PERIOD = 3.0


def test_proxy_killed_routes_back_within_10s(world, chaos_record):
    scenario = f"{world.backend}: proxy kill -9"
    pid_file = world.hub.data_dir / "jupyterhub-proxy.pid"
    proxy_pid = read_pid(pid_file)
    assert world.all_reachable()
    failed = {user: 0 for user in world.running}
    stop = threading.Event()

    def user_page(user: str, offset: float) -> None:
        """One user's page: a request every USER_PERIOD seconds, counting failures."""
        stop.wait(offset)
        while not stop.is_set():
            try:
                ok = world.reachable(user)
            except requests.RequestException:
                ok = False
            failed[user] += not ok
            stop.wait(USER_PERIOD)

    users = [
        threading.Thread(target=user_page, args=(u, i * USER_PERIOD / len(world.running)))
        for i, u in enumerate(world.running)
    ]
    for thread in users:
        thread.start()
    time.sleep(USER_PERIOD)
    kill9(proxy_pid)
    killed = time.monotonic()
    try:
        measure(lambda: world.reachable(world.running[0]), 20, "a route back", interval=0.05)
        back = chaos_record(scenario, "first route back", time.monotonic() - killed)
        measure(world.all_reachable, 20, "every server through the proxy", interval=0.05)
        every = chaos_record(scenario, "every route back", time.monotonic() - killed)
        time.sleep(USER_PERIOD)
    finally:
        stop.set()
        for thread in users:
            thread.join()
    most = max(failed.values())
    chaos_record(scenario, f"failed requests of a user asking every {USER_PERIOD:.0f} s", most,
                 "requests")  # fmt: skip
    assert back <= 10 and every <= 10, f"routes back after {back:.1f} s, all after {every:.1f} s"
    assert max(failed.values()) <= 1, failed
    new_pid = read_pid(pid_file)
    assert new_pid != proxy_pid and cmdline(new_pid)
    assert world.hub_answers()


def test_scheduler_killed_is_started_again_with_its_leases_and_queue(world, chaos_record):
    scenario = f"{world.backend}: gpu-scheduler kill -9"
    before = world.gpu_state()
    if world.gpu_holder:
        assert [user for _, user, _ in before["leases"]] == [world.gpu_holder]
        assert [user for _, user, _ in before["queue"]] == [world.queued]
    pids = one_each(world)
    kill9(pids["gpu-scheduler"])
    killed = time.monotonic()

    def restarted():
        found = services(world)["gpu-scheduler"]
        return found and found != [pids["gpu-scheduler"]] and scheduler_answers(world)

    measure(restarted, 30, "the GPU scheduler started again and answering")
    took = chaos_record(scenario, "scheduler answers again", time.monotonic() - killed)
    assert took <= 10
    after = one_each(world)
    # the same supervisor started it again; the hub saw nothing die
    assert after["gpu-scheduler supervisor"] == pids["gpu-scheduler supervisor"]
    assert after["idle-culler"] == pids["idle-culler"]
    assert world.gpu_state() == before
    # a user's request through the proxy reaches the new one
    r = world.scheduler.api(world.tokens[world.running[0]], "GET", "capacity")
    assert r.status_code == 200, r.text
    assert "Cannot connect to" not in world.hub.log().split("kill -9")[-1]


def start_failure(world, user: str, token: str) -> tuple[int, str]:
    """Start ``user``'s GPU server; the status and message of its failure (at once, or in
    the progress stream)."""
    r = token_api(
        world.hub.url, token, "POST", f"/hub/api/users/{user}/server", json={"profile": "gpu"}
    )
    if r.status_code != 202:
        return r.status_code, r.json().get("message", "")
    url = f"{world.hub.url}/hub/api/users/{user}/server/progress"
    headers = {"Authorization": f"token {token}"}
    with requests.get(url, headers=headers, stream=True, timeout=60) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed"):
                    return 202, event.get("message", "")
    raise AssertionError(f"the start of {user}'s server did not fail")


def test_a_gpu_start_while_the_scheduler_is_down_is_a_clear_503(world, chaos_record):
    """The scheduler down and not yet started again (its supervisor held with SIGSTOP)."""
    r = world.api("POST", "/users/zed", json={})
    assert r.status_code == 201, r.text
    token = world.api("POST", "/users/zed/tokens", json={}).json()["token"]
    before = world.gpu_state()
    pids = one_each(world)
    os.kill(pids["gpu-scheduler supervisor"], signal.SIGSTOP)
    try:
        kill9(pids["gpu-scheduler"])
        measure(lambda: not cmdline(pids["gpu-scheduler"]), 5, "the scheduler gone")
        status, message = start_failure(world, "zed", token)
    finally:
        os.kill(pids["gpu-scheduler supervisor"], signal.SIGCONT)
    assert status in (202, 503), message
    assert message == SCHEDULER_DOWN
    assert world.server("zed") is None
    measure(lambda: scheduler_answers(world), 30, "the scheduler started again")
    assert world.gpu_state() == before
    assert "500 POST /hub/api/users/zed/server" not in world.hub.log()


def test_hub_killed_servers_leases_survive_and_no_service_is_left(world, chaos_record):
    scenario = f"{world.backend}: hub kill -9"
    hub = world.hub
    servers = servers_snapshot(world)
    assert all(ready for ready, _, _ in servers.values()), servers
    gpus = world.gpu_state()
    queued_before = world.scheduler.state(world.admin_token)["waiting"]
    old = one_each(world)
    old_token = environ_of(old["gpu-scheduler"])["JUPYTERHUB_API_TOKEN"]
    culler_token = environ_of(old["idle-culler"])["JUPYTERHUB_API_TOKEN"]
    r = token_api(hub.url, old_token, "GET", "/hub/api/user")
    assert r.status_code == 200, r.text

    hub.proc.send_signal(signal.SIGKILL)
    hub.proc.wait(10)
    killed = time.monotonic()

    def services_gone():
        return not any(cmdline(pid) for pid in old.values())

    measure(services_gone, 10, "the dead hub's services to end")
    chaos_record(scenario, "old services ended", time.monotonic() - killed)
    # the servers run on without the hub (they cannot check users' tokens meanwhile)
    assert servers_alive(world, servers)

    started = time.monotonic()
    hub.start(timeout=120)
    up = time.monotonic()
    chaos_record(scenario, "hub up again (start to API through the proxy)", up - started)
    measure(world.all_reachable, 10, "every server through the proxy after the restart")
    chaos_record(scenario, "every server reachable after the hub is up", time.monotonic() - up)
    assert servers_snapshot(world) == servers  # the same servers, found again

    new = one_each(world)
    assert set(new.values()).isdisjoint(old.values())
    # the old services' tokens are dead; the new scheduler's works
    for token in (old_token, culler_token):
        r = token_api(hub.url, token, "GET", "/hub/api/user")
        assert r.status_code == 403, r.text
    fresh = environ_of(new["gpu-scheduler"])["JUPYTERHUB_API_TOKEN"]
    assert fresh != old_token
    assert token_api(hub.url, fresh, "GET", "/hub/api/user").status_code == 200

    # the scheduler keeps its port: still the same process after its first checks
    measure(lambda: scheduler_answers(world), 10, "the scheduler answering")
    time.sleep(6)  # past a check (check_every: 5 s)
    assert one_each(world) == new
    assert "Address already in use" not in hub.log()
    state = world.gpu_state()
    assert state["leases"] == gpus["leases"]  # none lost, doubled or leaked
    if world.queued:
        # a start waiting in the GPU queue dies with the hub (JupyterHub keeps no pending
        # spawn): the scheduler's first check orphans its request (out of the queue, no
        # GPU held for it) and keeps its place for gpus.orphan_grace; starting again
        # within it, the user is back in the same place (the progress page says so:
        # tests/integration/test_gpu_queue_restart.py)
        assert state["queue"] == []
        assert world.server(world.queued) is None
        (before,) = [w for w in queued_before if w["user"] == world.queued]
        asked = time.monotonic()
        r = token_api(
            hub.url,
            world.tokens[world.queued],
            "POST",
            f"/hub/api/users/{world.queued}/server",
            json={"profile": "gpu"},
        )
        assert r.status_code == 202, r.text

        def back_in_place():
            waiting = world.scheduler.state(world.admin_token)["waiting"]
            mine = [w for w in waiting if w["user"] == world.queued]
            return len(mine) == 1 and mine[0]["position"] == before["position"] and mine[0]

        measure(back_in_place, 30, "the user back in the same place of the queue")
        chaos_record(scenario, "queued user back in the same place", time.monotonic() - asked)
        again = back_in_place()
        assert again["queued_at"] == before["queued_at"] and again["id"] != before["id"]
        assert again["submitted_at"] > before["submitted_at"]
        measure(
            lambda: f"{world.queued} kept its place in the GPU queue" in hub.log(),
            10,
            "the hub's log line for the kept place",
        )
