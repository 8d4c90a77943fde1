"""One GPU scheduler per Postgres database (gpu_scheduler.single): a session-level advisory
lock of its own, on a real PostgreSQL, with real processes holding it; the hub's lock on
the same database is another key, so a hub and its scheduler sharing one do not wait for
each other."""

import io
import time

import pytest

from gpu_scheduler import single
from gputest import lock_holder, read_until
from hub_config import single_hub

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_a_second_scheduler_on_one_postgres_stops_or_waits_and_takes_over(postgres):
    url = postgres.replace("postgresql://", "postgresql+psycopg://")
    first = lock_holder(url, wait=False)
    waiting = None
    try:
        read_until(first, "held", [])
        # the hub's lock on the same database is apart
        hub = single_hub.HubLock(None, -1, 0.0)
        single_hub.lock_postgres(hub, url, wait=False, out=io.StringIO())
        hub.release()
        second = lock_holder(url, wait=False)
        out, _ = second.communicate(timeout=30)
        assert second.returncode != 0 and "held" not in out
        assert "another GPU scheduler uses the database of gpus.db_url" in out
        waiting = lock_holder(url, wait=True)
        lines: list[str] = []
        read_until(waiting, "waiting for the previous GPU scheduler to exit", lines)
        first.kill()  # kill -9: Postgres ends the session, and its lock with it
        killed = time.monotonic()
        read_until(waiting, "held", lines)
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
