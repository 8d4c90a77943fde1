"""Start-up of a real hub: invalid config stops it, culling works, Postgres works."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from hubtest import CONFIG_PY, new_password, setup_token_in, start_server, token_api, wait_for

pytestmark = pytest.mark.integration


def run_hub_with(tmp_path, text):
    """Start jupyterhub (and `dlhub up`) on a config file; both must refuse it."""
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    env = dict(os.environ, DLHUB_CONFIG=str(config))
    jupyterhub = Path(sys.executable).parent / "jupyterhub"
    hub = subprocess.run(
        [str(jupyterhub), "-f", str(CONFIG_PY)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    up = subprocess.run(
        [sys.executable, "-m", "hub_config", "up", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return config, hub, up


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("hub:\n  bind_ulr: x\n", "hub.bind_ulr", "unknown key"),
        ("hub:\n  hub_port: http\n", "hub.hub_port", "expected an integer, got 'http'"),
        ("culling:\n  every: 0\n", "culling.every", "must be at least 1, got 0"),
    ],
)
def test_invalid_config_stops_startup(tmp_path, text, key, problem):
    config, hub, up = run_hub_with(tmp_path, text)
    for proc in (hub, up):
        assert proc.returncode != 0
        assert f"invalid dlhub config {config}: {key}: {problem}" in proc.stderr
    # nothing was started or written
    assert not (tmp_path / "data").exists()


def test_unreadable_config_stops_startup(tmp_path):
    config = tmp_path / "missing.yaml"
    env = dict(os.environ, DLHUB_CONFIG=str(config))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(CONFIG_PY)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert f"invalid dlhub config {config}: file not found" in proc.stderr


def test_idle_server_is_culled(hub_factory):
    hub = hub_factory({"culling": {"enabled": True, "timeout": 5, "every": 2}}, name="cull")
    admin = hub.admin()
    token = admin.new_token("culling")
    start_server(hub.url, token, "admin")

    def culled():
        model = token_api(hub.url, token, "GET", "/hub/api/users/admin").json()
        return "" not in model["servers"]

    wait_for(culled, 90, interval=1, what="the idle culler to stop the server")
    assert "Culling server admin" in hub.log() or "culling server" in hub.log().lower()


def processes_in(directory: Path) -> list[int]:
    """Pids of processes whose working directory is ``directory``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == directory:
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def test_dlhub_up_prints_where_to_log_in_and_ctrl_c_stops_everything(hub_factory):
    hub = hub_factory({"culling": {"enabled": False}}, name="up", start=False)
    hub.start(command=[sys.executable, "-m", "hub_config", "up"])
    banner = hub.log()
    assert f"Open {hub.url}/hub/ in your browser." in banner
    assert f"First admin: open {hub.url}/hub/first-admin#token=" in banner
    admin, password = hub.session(), new_password()
    admin.first_admin("admin", password, setup_token_in(banner))
    admin.login("admin", password)
    token = admin.new_token("ctrl-c")
    start_server(hub.url, token, "admin")
    home = hub.home("admin")
    assert processes_in(home), "the user server runs in the user's directory"
    assert hub.stop(sig=signal.SIGINT) == 0
    assert processes_in(home) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(hub.url, timeout=5)


def test_hub_runs_on_postgres(postgres, hub_factory):
    hub = hub_factory({"hub": {"db_url": postgres}, "culling": {"enabled": False}}, name="pghub")
    try:
        check_postgres_hub(hub, postgres)
    finally:
        hub.stop()  # before the database server goes away


def check_postgres_hub(hub, postgres):
    import psycopg

    admin = hub.admin()
    token = admin.new_token("pg")
    r = token_api(hub.url, token, "POST", "/hub/api/users/erin", json={})
    assert r.status_code == 201
    with psycopg.connect(postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM users ORDER BY name")
        assert [row[0] for row in cur.fetchall()] == ["admin", "erin"]
    # no SQLite file was made
    assert not (hub.data_dir / "jupyterhub.sqlite").exists()
    # state survives a restart
    hub.stop()
    hub.start()
    model = token_api(hub.url, token, "GET", "/hub/api/users/erin")
    assert model.status_code == 200 and model.json()["name"] == "erin"


def test_scheduler_state_on_postgres(postgres):
    from gpu_scheduler.model import Device, Request
    from gpu_scheduler.policy import Scheduler
    from gpu_scheduler.store import Store

    devices = [Device(f"GPU-{i}", "A100", 0, i) for i in range(2)]
    s = Scheduler(devices, default_quota=1)
    for i, user in enumerate(["a", "b", "c"]):
        s.submit(Request(f"r{i}", user, "", 1, float(i)), i)
    Store(postgres.replace("postgresql://", "postgresql+psycopg://")).save(s)
    restarted = Scheduler(devices, default_quota=1)
    Store(postgres.replace("postgresql://", "postgresql+psycopg://")).load(restarted)
    restarted.check()
    assert set(restarted.leases) == {"r0", "r1"} and set(restarted.queue) == {"r2"}
