"""gpu_scheduler.single: one GPU scheduler per database, with real processes holding it.

A second scheduler on the same SQLite file stops at once naming the database and the
first (local, docker), or waits for it, saying so, and takes over once it is gone however
it ended (``kill -9``: the kernel drops the lock), as a replacement pod does on Kubernetes.
The real scheduler processes are in tests/integration/test_gpu_scheduler_service.py.
"""

from __future__ import annotations

import io
import time

import pytest

from gpu_scheduler import single
from gputest import lock_holder, read_until


@pytest.fixture
def first(tmp_path):
    url = f"sqlite:///{tmp_path / 'gpu-scheduler.sqlite'}"
    child = lock_holder(url, wait=False)
    read_until(child, "held", [])
    yield url, child
    child.kill()
    child.wait()


def test_a_second_scheduler_on_the_same_database_stops_naming_it_and_the_first(first, tmp_path):
    url, child = first
    second = lock_holder(url, wait=False)
    out, _ = second.communicate(timeout=30)
    assert second.returncode != 0
    assert "held" not in out
    assert f"another GPU scheduler runs on the database {tmp_path / 'gpu-scheduler.sqlite'}" in out
    assert f"pid {child.pid} on host" in out and "gpus.db_url" in out
    assert child.poll() is None  # the first runs on


def test_a_waiting_scheduler_takes_over_once_the_first_is_killed(first):
    url, child = first
    second = lock_holder(url, wait=True)
    lines: list[str] = []
    try:
        read_until(second, "waiting for the previous GPU scheduler to exit", lines)
        assert f"pid {child.pid} on host" in lines[-1]
        time.sleep(1)
        assert second.poll() is None and not any("held" == x.strip() for x in lines)
        child.kill()  # kill -9
        killed = time.monotonic()
        read_until(second, "held", lines)
        took = time.monotonic() - killed
        assert any("GPU scheduler lock taken at" in x for x in lines), lines
        assert took < 2, took  # polled every 50 ms
        print(f"the waiting scheduler took over {took:.2f} s after kill -9")
    finally:
        second.kill()
        second.wait()


def test_the_lock_is_beside_the_database_apart_from_the_hubs(tmp_path):
    from hub_config import single_hub

    hub = single_hub.acquire(tmp_path, wait=False, out=io.StringIO())
    try:
        lock = single.hold(f"sqlite:///{tmp_path / 'gpu.sqlite'}", wait=False, out=io.StringIO())
        assert lock.path == tmp_path / single.LOCK_FILE
        lock.release()
    finally:
        hub.release()
    assert single.hold("sqlite://", wait=False) is None  # in memory: nothing shared
