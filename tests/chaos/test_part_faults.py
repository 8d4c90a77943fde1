"""Faults of the parts around the hub: what survives them, and how long recovery takes
(recorded through tests/chaos/conftest.py's ``chaos_record``).

- a user's server killed outside the hub (``docker kill`` of its container; on the local
  backend SIGKILL of its process), in the ``world`` of five servers at work: the hub
  notices within its poll interval, the GPU lease is given back at once and handed to the
  user waiting for it, the user can start again;
- the hub's PostgreSQL restarted while three spawns wait (queued for the one GPU): the
  hub's next request is answered, every waiting spawn completes in turn;
- the data dir's disk full during a spawn (a 16 MiB tmpfs, filled): the start is refused
  with 507 naming the disk, the hub and the scheduler keep answering, both SQLite
  databases pass ``integrity_check`` once space is freed, the hub restarts fine;
- the Docker engine restarted (a private engine, :mod:`private_engine`, so that other
  suites' engine is left alone): containers have no restart policy, so the hub marks the
  servers stopped once the engine is back, the GPU lease goes to the waiting user, nobody
  keeps a lease without a server, and the users start again.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import docker
import pytest
from chaoskit import measure, pids_of
from private_engine import PrivateEngine

from dockertest import USER_IMAGE, docker_names, docker_section
from gputest import SchedulerClient, gpu_hub_config
from hub_config.mapping import POLL_INTERVAL
from hubtest import (
    RunningHub,
    as_root,
    part_missing,
    remove_docker_objects,
    start_server,
    stop_server,
    token_api,
    wait_for,
)
from pgtest import PostgresServer

pytestmark = [pytest.mark.chaos]

GPU_PROFILES = [
    {"name": "gpu", "display_name": "One GPU", "gpus": 1, "default": True},
    {"name": "cpu", "display_name": "CPU only"},
]

#: the docker engine here has no NVIDIA runtime: servers there run the CPU profile
CPU_FIRST = [
    {"name": "cpu", "display_name": "CPU only", "default": True},
    {"name": "gpu", "display_name": "One GPU", "gpus": 1},
]


def server_model(hub, token, user) -> dict | None:
    """``user``'s default server as the hub's API shows it (None: none)."""
    r = token_api(hub.url, token, "GET", f"/hub/api/users/{user}")
    assert r.status_code == 200, r.text
    return r.json()["servers"].get("")


def waiting_for_gpu(hub, token, user) -> bool:
    server = server_model(hub, token, user)
    return bool(server) and server["pending"] == "spawn" and not server["ready"]


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {k: v for k, _, v in pairs}


def kill_server_outside_the_hub(world, user: str) -> None:
    """``docker kill`` of ``user``'s container, or SIGKILL of their server's process."""
    hub = world.hub
    if world.backend == "docker":
        engine = docker.from_env()
        prefix = hub.config["docker"]["name_prefix"]
        (container,) = [
            c
            for c in engine.containers.list(filters={"name": prefix})
            if f"JUPYTERHUB_USER={user}" in c.attrs["Config"]["Env"]
        ]
        container.kill()
        return
    api = f":{hub.config['hub']['hub_port']}/"
    (pid,) = [
        p
        for p in pids_of("jupyterhub-singleuser")
        if environ_of(p).get("JUPYTERHUB_USER") == user
        and api in environ_of(p).get("JUPYTERHUB_API_URL", "")
    ]
    os.kill(pid, signal.SIGKILL)


# --- a user's server killed outside the hub ---------------------------------------------------


@pytest.mark.parametrize("world", ["docker", "local"], indirect=True)
def test_a_server_killed_outside_the_hub_is_noticed_its_lease_handed_on(world, chaos_record):
    scenario = f"{world.backend}: a server killed outside the hub"
    victim = world.gpu_holder or world.running[1]
    profile = "gpu" if victim == world.gpu_holder else "cpu"
    others = [u for u in world.running if u != victim]
    check_every = world.hub.config["gpus"]["check_every"]
    poll = POLL_INTERVAL[world.backend]

    kill_server_outside_the_hub(world, victim)
    killed = time.monotonic()
    noticed = measure(lambda: world.server(victim) is None, poll * 1.1 + 10, f"{victim} noticed")
    chaos_record(scenario, f"the hub shows it stopped (poll every {poll} s)", noticed)
    assert noticed <= poll * 1.1 + 3

    def released():
        return all(user != victim for _, user, _ in world.gpu_state()["leases"])

    wait_for(released, check_every + 5, interval=0.2, what=f"{victim}'s lease released")
    chaos_record(scenario, "its GPU lease released", time.monotonic() - killed)
    if world.queued:
        # the GPU goes to the user waiting for it: their spawn completes
        handed = measure(
            lambda: (world.server(world.queued) or {}).get("ready"),
            60,
            f"{world.queued}'s server to start with the freed GPU",
        )
        chaos_record(scenario, "the waiting user's server ready with the freed GPU", handed)
        assert [user for _, user, _ in world.gpu_state()["leases"]] == [world.queued]
        stop_server(world.hub.url, world.admin_token, world.queued)
    # the other servers were not touched; the user starts again as before
    assert all(world.reachable(u) for u in others)
    t0 = time.monotonic()
    start_server(world.hub.url, world.tokens[victim], victim, {"profile": profile}, timeout=180)
    chaos_record(scenario, "the user's new server ready", time.monotonic() - t0)
    assert world.reachable(victim)
    if profile == "gpu":
        assert [user for _, user, _ in world.gpu_state()["leases"]] == [victim]


# --- the hub's PostgreSQL restarted during spawns ---------------------------------------------


@pytest.fixture(scope="module")
def pg_server():
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def pg_hub(pg_server, hub_factory):
    config = {
        **gpu_hub_config(GPU_PROFILES, count=1, check_every=2),
        "hub": {"db_url": pg_server.url},
        "culling": {"enabled": False},
    }
    hub = hub_factory(config, name="pghub")
    yield hub
    hub.stop()  # before the database server goes


def test_postgres_restarted_during_spawns_the_hub_reconnects_and_no_spawn_is_stuck(
    pg_hub, pg_server, chaos_record
):
    scenario = "postgres restarted during spawns"
    hub = pg_hub
    token = hub.admin().new_token("postgres restart")
    users = ["holder", "q1", "q2", "q3"]
    for user in users:
        r = token_api(hub.url, token, "POST", f"/hub/api/users/{user}", json={})
        assert r.status_code == 201, r.text
    start_server(hub.url, token, "holder")
    for user in users[1:]:
        r = token_api(hub.url, token, "POST", f"/hub/api/users/{user}/server", json={})
        assert r.status_code == 202, r.text
    scheduler = SchedulerClient(hub)
    wait_for(lambda: len(scheduler.state(token)["waiting"]) == 3, 30, what="three spawns queued")
    assert all(waiting_for_gpu(hub, token, u) for u in users[1:])

    began = time.monotonic()
    pg_server.stop()
    pg_server.start()
    restarted = time.monotonic()
    chaos_record(scenario, "postgres stopped and started", restarted - began)
    # the first request after the restart is answered: no connection was held across it
    r = token_api(hub.url, token, "GET", "/hub/api/users")
    answered = time.monotonic() - restarted
    chaos_record(scenario, "the hub's first answer after the restart", answered)
    assert r.status_code == 200, r.text
    assert all(waiting_for_gpu(hub, token, u) for u in users[1:])

    # every waiting spawn completes in turn, each when the one before stops
    for before, user in zip(users, users[1:], strict=False):
        stop_server(hub.url, token, before)
        ready = measure(
            lambda u=user: (server_model(hub, token, u) or {}).get("ready"),
            60,
            f"{user}'s spawn to complete after the restart",
        )
        chaos_record(scenario, f"queued spawn of {user} ready once the GPU was free", ready)
    stop_server(hub.url, token, users[-1])
    state = scheduler.state(token)
    assert state["leases"] == [] and state["waiting"] == []
    # nothing pending or running is left in the hub's database
    r = token_api(hub.url, token, "GET", "/hub/api/users?state=active")
    assert r.status_code == 200 and r.json() == [], r.text


# --- the data dir's disk full during a spawn ----------------------------------------------------


@pytest.fixture(scope="module")
def small_disk_hub(hub_factory, chaos_engine):
    """A docker-backend hub with the GPU scheduler whose data dir (the hub's and the
    scheduler's SQLite databases) is a 16 MiB tmpfs of its own."""
    if not as_root():
        part_missing("the disk-full scenario mounts a tmpfs: run the chaos suite as root")
    names = docker_names("dlf", "dlhub-full")
    config = {
        **gpu_hub_config(CPU_FIRST, count=1, check_every=5),
        "backend": "docker",
        "docker": docker_section(names),
        "culling": {"enabled": False},
    }
    hub = hub_factory(config, name="smalldisk", start=False)
    hub.data_dir.mkdir(mode=0o700)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "dlhub-chaos", str(hub.data_dir)],
        check=True,
    )
    try:
        yield hub.start(timeout=90)
    finally:
        hub.stop()
        subprocess.run(["umount", str(hub.data_dir)], check=False)
        remove_docker_objects(chaos_engine, names["prefix"], names["network"])


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system has no space left."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def integrity(database: Path) -> str:
    """SQLite's ``PRAGMA integrity_check`` of ``database`` ("ok" when sound)."""
    with sqlite3.connect(database) as db:
        return "; ".join(row[0] for row in db.execute("PRAGMA integrity_check"))


def test_data_dir_full_during_a_spawn_a_clear_refusal_and_sound_databases(
    small_disk_hub, chaos_record
):
    scenario = "the data dir's disk full during a spawn"
    hub = small_disk_hub
    admin = hub.admin()
    token = admin.new_token("disk full")
    assert token_api(hub.url, token, "POST", "/hub/api/users/dora", json={}).status_code == 201
    start_server(hub.url, token, "dora")
    stop_server(hub.url, token, "dora")

    filler = fill(hub.data_dir)
    t0 = time.monotonic()
    r = token_api(hub.url, token, "POST", "/hub/api/users/dora/server", json={})
    chaos_record(scenario, "the start refused", time.monotonic() - t0)
    assert r.status_code == 507, r.text
    message = r.json()["message"]
    assert f"data dir {hub.data_dir} is full" in message and "free space" in message
    # a browser's start on the spawn page gets the same sentence on the hub's error page
    page = admin.post_form("/hub/spawn/dora", {"profile": "cpu"})
    assert page.status_code == 507 and f"data dir {hub.data_dir} is full" in page.text
    # the hub keeps answering, and nothing of the refused start is left
    assert server_model(hub, token, "dora") is None
    assert token_api(hub.url, token, "GET", "/hub/api/users").status_code == 200
    # so does the GPU scheduler, whose database is on the same disk
    assert SchedulerClient(hub).state(token)["leases"] == []

    filler.unlink()
    for database in ("jupyterhub.sqlite", "gpu-scheduler.sqlite"):
        assert integrity(hub.data_dir / database) == "ok", database
    t0 = time.monotonic()
    start_server(hub.url, token, "dora")
    chaos_record(scenario, "a start once space was freed", time.monotonic() - t0)

    hub.stop()
    for database in ("jupyterhub.sqlite", "gpu-scheduler.sqlite"):
        assert integrity(hub.data_dir / database) == "ok", database
    t0 = time.monotonic()
    hub.start(timeout=90)
    chaos_record(scenario, "the hub up again after a restart", time.monotonic() - t0)
    assert (server_model(hub, token, "dora") or {}).get("ready")
    stop_server(hub.url, token, "dora")


# --- the Docker engine restarted ----------------------------------------------------------------


@pytest.fixture(scope="module")
def private_engine(chaos_engine):
    """A Docker engine of this module's own (:mod:`private_engine`), with the user image."""
    engine = PrivateEngine().start()
    try:
        engine.prune()
        engine.load(USER_IMAGE)
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="module")
def engine_hub(private_engine, hub_factory):
    """A docker-backend hub on the private engine: GPU servers start there (see
    :mod:`private_engine`), so one can hold the lease while the engine restarts."""
    names = docker_names("dle", "dlhub-engine")
    config = {
        **gpu_hub_config(CPU_FIRST, count=1, check_every=5),
        "backend": "docker",
        "docker": docker_section(names),
        "culling": {"enabled": False},
    }
    hub = hub_factory(config, name="enginehub", start=False)
    hub.env = lambda: {**RunningHub.env(hub), "DOCKER_HOST": private_engine.host}
    try:
        yield hub.start(timeout=90)
    finally:
        hub.stop()
        if private_engine.answers():
            private_engine.remove_containers(names["prefix"], names["network"])


def test_docker_engine_restarted_the_hub_marks_servers_stopped_and_no_lease_is_orphaned(
    engine_hub, private_engine, chaos_record
):
    scenario = "the docker engine restarted"
    hub = engine_hub
    token = hub.admin().new_token("engine restart")
    for user in ("ana", "ben", "quinn"):
        assert token_api(hub.url, token, "POST", f"/hub/api/users/{user}", json={}).status_code
    start_server(hub.url, token, "ana", {"profile": "gpu"})
    start_server(hub.url, token, "ben", {"profile": "cpu"})
    r = token_api(hub.url, token, "POST", "/hub/api/users/quinn/server", json={"profile": "gpu"})
    assert r.status_code == 202, r.text
    scheduler = SchedulerClient(hub)
    wait_for(lambda: len(scheduler.state(token)["waiting"]) == 1, 30, what="quinn queued")
    (lease,) = scheduler.state(token)["leases"]
    assert lease["user"] == "ana"

    began = time.monotonic()
    private_engine.stop()  # it stops its containers first
    chaos_record(scenario, "the engine stopped, its containers with it", time.monotonic() - began)
    # without its engine the hub still answers
    assert token_api(hub.url, token, "GET", "/hub/api/users").status_code == 200
    t0 = time.monotonic()
    private_engine.start()
    chaos_record(scenario, "the engine back after its start", time.monotonic() - t0)
    # the containers have no restart policy: they stay stopped, and the hub says so
    back = time.monotonic()
    poll = POLL_INTERVAL["docker"]

    def both_stopped():
        return all(server_model(hub, token, u) is None for u in ("ana", "ben"))

    wait_for(both_stopped, poll * 1.1 + 15, interval=0.1, what="ana's and ben's servers stopped")
    stopped = time.monotonic() - began
    chaos_record(
        scenario, f"the servers shown stopped, from the engine's stop (poll {poll} s)", stopped
    )
    assert time.monotonic() - back <= poll * 1.1 + 5
    # ana's lease went with her server, to the user waiting for it
    handed = measure(
        lambda: (server_model(hub, token, "quinn") or {}).get("ready"),
        60,
        "quinn's server to start with the freed GPU",
    )
    chaos_record(scenario, "the waiting user's server ready with the freed GPU", handed)
    assert [x["user"] for x in scheduler.state(token)["leases"]] == ["quinn"]
    assert time.monotonic() - back < 60
    # the users start again on the restarted engine, their homes kept
    for user, profile in (("ben", "cpu"), ("ana", "cpu")):
        t0 = time.monotonic()
        start_server(hub.url, token, user, {"profile": profile})
        chaos_record(scenario, f"{user}'s new server ready", time.monotonic() - t0)
    for user in ("ana", "ben", "quinn"):
        stop_server(hub.url, token, user)
    state = scheduler.state(token)
    assert state["leases"] == [] and state["waiting"] == []
