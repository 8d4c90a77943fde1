"""The managed services' life (hub_config.managed_services, hub_config.supervisor) with
real processes (a short ``sleep`` stands in for a service): started again when it dies,
ended with its supervisor, gone with the hub, and a dead hub's supervisors ended at the
next start by their pid files only; the old tokens revoked from a real hub database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub_config import managed_services, supervisor
from hub_config.managed_services import cmdline

pytestmark = pytest.mark.chaos

SERVICE = [sys.executable, "-c", "import time; time.sleep(600)"]


def wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def supervise(tmp_path, name="svc", parent_wrapper=False) -> tuple[subprocess.Popen, Path]:
    pid_file = tmp_path / "services" / f"{name}.pid"
    [command] = managed_services.supervised(
        [{"name": name, "command": SERVICE}], tmp_path, sys.executable
    )
    proc = subprocess.Popen(command["command"], stderr=subprocess.PIPE, text=True)
    wait(lambda: pid_file.exists() and children(proc.pid))
    return proc, pid_file


def test_supervised_wraps_managed_services_only(tmp_path):
    external = {"name": "ext", "url": "http://x:1"}
    out = managed_services.supervised(
        [{"name": "a", "command": ["run", "a"], "url": "http://a:2"}, external],
        tmp_path,
        "/py",
    )
    assert out[1] == external
    assert out[0]["url"] == "http://a:2"
    assert out[0]["command"] == [
        "/py", "-m", "hub_config.supervisor", "--name", "a",
        "--pid-file", str(tmp_path / "services" / "a.pid"), "--", "run", "a",
    ]  # fmt: skip


def test_next_delay_backs_off_while_the_service_keeps_dying():
    assert supervisor.next_delay(0, 0.5) == 1
    assert supervisor.next_delay(1, 0.5) == 2
    assert supervisor.next_delay(16, 0.5) == supervisor.MAX_DELAY
    assert supervisor.next_delay(30, supervisor.STEADY + 1) == 0


def test_a_killed_service_is_started_again_and_stopped_with_its_supervisor(tmp_path):
    proc, pid_file = supervise(tmp_path)
    try:
        assert int(pid_file.read_text()) == proc.pid
        (first,) = children(proc.pid)
        os.kill(first, signal.SIGKILL)
        (second,) = wait(lambda: [p for p in children(proc.pid) if p != first])
        assert second != first
        proc.send_signal(signal.SIGINT)  # as the hub stops it (and as Ctrl-C would)
        assert proc.wait(5) == 0
        assert not cmdline(second)
        assert not pid_file.exists()
        err = proc.stderr.read()
        assert "exited with -9" in err and "Traceback" not in err
    finally:
        proc.kill()


def test_supervisor_and_service_die_with_the_hub(tmp_path):
    """A stand-in hub (a shell) starts the supervisor and is killed with SIGKILL."""
    pid_out = tmp_path / "sup.pid"
    [service] = managed_services.supervised(
        [{"name": "svc", "command": SERVICE}], tmp_path, sys.executable
    )
    quoted = " ".join(f"'{part}'" for part in service["command"])
    hub = subprocess.Popen(["sh", "-c", f"{quoted} & echo $! > {pid_out}; wait"])
    try:
        sup = wait(lambda: pid_out.exists() and pid_out.read_text().strip() and
                   int(pid_out.read_text()))  # fmt: skip
        (service_pid,) = wait(lambda: children(sup))
        hub.kill()
        hub.wait()
        wait(lambda: not cmdline(sup) and not cmdline(service_pid), 5)
    finally:
        hub.kill()


def test_end_orphans_ends_only_supervisors_of_its_pid_files(tmp_path):
    proc, pid_file = supervise(tmp_path)
    (service_pid,) = children(proc.pid)
    stranger = subprocess.Popen(SERVICE)
    (tmp_path / "services" / "other.pid").write_text(f"{stranger.pid}\n")
    try:
        assert managed_services.end_orphans(tmp_path) == [proc.pid]
        assert proc.wait(5) == 0
        wait(lambda: not cmdline(service_pid), 5)
        assert stranger.poll() is None  # not started by a hub: never touched
        assert list((tmp_path / "services").glob("*.pid")) == []
    finally:
        proc.kill()
        stranger.kill()
        stranger.wait()


def test_hub_running_reads_the_hub_pid_file(tmp_path):
    from hub_config.datadir import HUB_PID

    assert not managed_services.hub_running(tmp_path)
    (tmp_path / HUB_PID).write_text(f"{os.getpid()}\n")
    assert not managed_services.hub_running(tmp_path)  # this very process
    # a process whose command line says jupyterhub
    hub = subprocess.Popen(["jupyterhub", "30"], executable="/bin/sleep")
    try:
        wait(lambda: "jupyterhub" in " ".join(cmdline(hub.pid)))
        (tmp_path / HUB_PID).write_text(f"{hub.pid}\n")
        assert managed_services.hub_running(tmp_path)
    finally:
        hub.kill()
        hub.wait()
    assert not managed_services.hub_running(tmp_path)  # a dead hub's stale pid file


def test_revoke_tokens_deletes_only_the_services_tokens(tmp_path):
    from jupyterhub import orm

    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    db = orm.new_session_factory(url)()
    scheduler, other = orm.Service(name="gpu-scheduler"), orm.Service(name="other")
    user = orm.User(name="ana")
    # the hub's own OAuth client, which JupyterHub makes at start and tokens refer to
    db.add_all([scheduler, other, user, orm.OAuthClient(identifier="jupyterhub")])
    db.commit()
    for owner in (scheduler, scheduler, other, user):
        owner.new_api_token()
    db.commit()
    assert managed_services.revoke_tokens(url, ["gpu-scheduler"]) == 2
    db.expire_all()
    assert [t.service.name for t in db.query(orm.APIToken) if t.service] == ["other"]
    assert len(user.api_tokens) == 1
    db.close()


def test_revoke_tokens_on_an_empty_database_does_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    assert managed_services.revoke_tokens(url, ["gpu-scheduler"]) == 0


@pytest.mark.parametrize("argv", [[], ["--name", "x"], ["--name", "x", "--"]])
def test_supervisor_needs_a_name_and_a_command(argv):
    with pytest.raises(SystemExit):
        supervisor.main(argv)
