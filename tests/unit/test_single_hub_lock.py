"""hub_config.single_hub: the lock one hub holds on its data dir, with real processes
holding it (the hubs themselves are in tests/integration/test_single_hub.py)."""

from __future__ import annotations

import datetime
import io
import os
import subprocess
import sys
import textwrap
import time

import pytest

from hub_config import single_hub

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hub_config import single_hub
    lock = single_hub.acquire(Path(sys.argv[1]), wait=False, out=sys.stdout)
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def hold_in_child(data_dir, seconds: float) -> subprocess.Popen:
    """Another process holding the lock of ``data_dir`` for ``seconds``."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.strip() == "held":
            return child
    raise AssertionError(f"the holder did not take the lock: {lines}")


def test_a_second_holder_stops_naming_the_data_dir_and_the_first(tmp_path):
    child = hold_in_child(tmp_path, 30)
    try:
        with pytest.raises(SystemExit) as stopped:
            single_hub.acquire(tmp_path, wait=False, out=io.StringIO())
        message = str(stopped.value)
        assert f"another hub runs on the data dir {tmp_path}" in message
        assert f"pid {child.pid} on host" in message
        assert "hub.data_dir" in message
    finally:
        child.kill()
        child.wait()
    # the kernel released it with the process (kill -9): the next one takes it at once
    lock = single_hub.acquire(tmp_path, wait=False, out=io.StringIO())
    assert lock.waited < 1
    lock.release()


def test_a_waiting_hub_says_so_and_takes_the_lock_when_the_holder_exits(tmp_path):
    child = hold_in_child(tmp_path, 1.0)
    out = io.StringIO()
    try:
        lock = single_hub.acquire(tmp_path, wait=True, out=out)
        exited = child.poll()
    finally:
        child.kill()
        child.wait()
    log = out.getvalue()
    assert "dlhub: waiting for the previous hub to exit" in log
    assert f"pid {child.pid}" in log
    assert "hub lock taken at" in log
    assert exited is not None, "the lock was taken while its holder still ran"
    assert 0.5 < lock.waited < 10
    holder = single_hub.holder(tmp_path / single_hub.LOCK_FILE)
    assert holder.startswith(f"pid {os.getpid()} on host")
    lock.release()


def test_the_lock_handed_over_exec_is_adopted_only_when_it_is_the_data_dirs(tmp_path):
    environ = {}
    lock = single_hub.acquire(tmp_path, wait=False, out=io.StringIO())
    os.set_inheritable(lock.fd, True)
    environ[single_hub.FD_ENV] = str(lock.fd)
    adopted = single_hub.adopt(tmp_path, environ)
    assert adopted is not None and adopted.fd == lock.fd
    assert single_hub.FD_ENV not in environ
    assert not os.get_inheritable(lock.fd), "the hub's children would hold the lock"
    # another data dir, or a descriptor that is no lock file: not adopted
    other = tmp_path / "other"
    other.mkdir()
    assert single_hub.adopt(other, {single_hub.FD_ENV: str(lock.fd)}) is None
    assert single_hub.adopt(tmp_path, {single_hub.FD_ENV: "0"}) is None
    assert single_hub.adopt(tmp_path, {single_hub.FD_ENV: "x"}) is None
    lock.release()


def test_jupyterhub_subcommands_take_no_lock(tmp_path):
    environ = {"DLHUB_CONFIG": ""}
    assert single_hub.hold_for_hub(["jupyterhub", "token", "alice"], environ, tmp_path) is None
    assert not (tmp_path / "data" / single_hub.LOCK_FILE).exists()


def test_only_kubernetes_waits():
    assert single_hub.waits({"backend": "kubernetes"})
    assert not single_hub.waits({"backend": "local"})
    assert not single_hub.waits({"backend": "docker"})


def test_the_log_time_is_utc_with_microseconds():
    stamp = single_hub.now()
    assert stamp.endswith("+00:00") and "." in stamp
    assert abs(time.time() - datetime.datetime.fromisoformat(stamp).timestamp()) < 5
