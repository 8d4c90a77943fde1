"""One GPU scheduler per Postgres database (gpu_scheduler.single): a session-level advisory
lock of its own, on a real PostgreSQL, with real processes holding it; the hub's lock on
the same database is another key, so a hub and its scheduler sharing one do not wait for
each other."""

import io
import subprocess
import sys
import textwrap
import time

import pytest

from gpu_scheduler import single
from hub_config import single_hub

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

HOLDER = textwrap.dedent(
    """
    import sys, time
    from gpu_scheduler import single
    single.hold(sys.argv[1], wait=sys.argv[2] == "wait", out=sys.stdout)
    print("held", flush=True)
    time.sleep(60)
    """
)


def scheduler(url: str, wait: bool) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, "wait" if wait else "stop"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def until(child: subprocess.Popen, text: str, lines: list[str]) -> None:
    for line in child.stdout:
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} never came: {lines}")


def test_a_second_scheduler_on_one_postgres_stops_or_waits_and_takes_over(postgres):
    url = postgres.replace("postgresql://", "postgresql+psycopg://")
    first = scheduler(url, wait=False)
    waiting = None
    try:
        until(first, "held", [])
        # the hub's lock on the same database is apart
        hub = single_hub.HubLock(None, -1, 0.0)
        single_hub.lock_postgres(hub, url, wait=False, out=io.StringIO())
        hub.release()
        second = scheduler(url, wait=False)
        out, _ = second.communicate(timeout=30)
        assert second.returncode != 0 and "held" not in out
        assert "another GPU scheduler uses the database of gpus.db_url" in out
        waiting = scheduler(url, wait=True)
        lines: list[str] = []
        until(waiting, "waiting for the previous GPU scheduler to exit", lines)
        first.kill()  # kill -9: Postgres ends the session, and its lock with it
        killed = time.monotonic()
        until(waiting, "held", lines)
        took = time.monotonic() - killed
        assert any("database GPU scheduler lock taken at" in x for x in lines), lines
        print(f"the waiting scheduler took over {took:.2f} s after kill -9 (Postgres)")
        assert took < 10, took
    finally:
        for child in (first, waiting):
            if child is not None:
                child.kill()
                child.wait()
    assert single.PG_LOCK_KEY != single_hub.PG_LOCK_KEY
