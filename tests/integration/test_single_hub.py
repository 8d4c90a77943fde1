"""Two hubs never run on one data dir (hub_config/single_hub.py), with real hubs on the
local backend: a second hub, started as ``jupyterhub -f`` or as ``dlhub up``, stops at once
with one sentence while the first keeps serving; the lock is the hub's alone (not its
proxy's) and goes with it, so the next hub starts."""

from __future__ import annotations

import io
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from hub_config import single_hub
from hubtest import RunningHub

pytestmark = pytest.mark.integration

DLHUB = [str(Path(sys.executable).parent / "dlhub"), "up"]


def second_hub(first: RunningHub, workdir: Path) -> RunningHub:
    """A hub of its own ports and config file on ``first``'s data dir."""
    return RunningHub(workdir, {"hub": {"data_dir": str(first.data_dir)}})


def started_or_stopped(hub: RunningHub, command=None) -> tuple[int | None, float, str]:
    """Start ``hub``; its exit code (None: it came up), the seconds it took, its log."""
    begun = time.monotonic()
    try:
        hub.start(timeout=60, command=command)
        code = None
    except RuntimeError:
        code = hub.proc.returncode
    return code, time.monotonic() - begun, hub.log()


def holders(path: Path) -> list[int]:
    """The processes with ``path`` open (by /proc/<pid>/fd)."""
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = [link.readlink() for link in fd_dir.iterdir()]
        except OSError:
            continue
        if path in links:
            found.append(int(fd_dir.parent.name))
    return sorted(found)


def answers(hub: RunningHub) -> bool:
    return requests.get(f"{hub.url}/hub/api/", timeout=5).status_code == 200


@pytest.mark.parametrize("how", ["jupyterhub", "dlhub up"])
def test_a_second_hub_on_one_data_dir_stops_and_the_first_serves_on(hub_factory, tmp_path, how):
    command = DLHUB if how == "dlhub up" else None
    first = hub_factory(name="first", start=False).start(timeout=60, command=command)
    lock_file = first.data_dir / single_hub.LOCK_FILE
    # the hub process holds the lock (inherited through exec from `dlhub up`), its
    # proxy does not
    assert holders(lock_file) == [first.proc.pid]
    assert "hub lock taken at" in first.log()

    second = second_hub(first, tmp_path / "second")
    code, seconds, log = started_or_stopped(second, command)
    assert code == 1, log
    assert f"another hub runs on the data dir {first.data_dir}" in log
    assert f"pid {first.proc.pid} on host" in log
    assert "Traceback" not in log and "Initialized 0 spawners" not in log, log
    assert seconds < 30
    assert answers(first)
    print(f"{how}: second hub stopped after {seconds:.2f} s")

    # the first stops; the lock goes with it and the second starts on the same data dir
    first.stop()
    assert holders(lock_file) == []
    second.proc = None
    code, seconds, log = started_or_stopped(second, command)
    try:
        assert code is None, log
        assert answers(second)
        assert holders(lock_file) == [second.proc.pid]
    finally:
        second.stop()


def test_hubs_sharing_a_postgres_database_but_no_data_dir_wait_or_stop(postgres, tmp_path):
    """With Postgres the data dirs may differ (the chart's is then an emptyDir): the
    database's advisory lock keeps the second hub out until the first lets go."""
    out = io.StringIO()
    first = single_hub.acquire(tmp_path / "a", wait=False, out=out)
    single_hub.lock_postgres(first, postgres, wait=False, out=out)
    second = single_hub.acquire(tmp_path / "b", wait=False, out=out)
    with pytest.raises(SystemExit, match="another hub uses the database of hub.db_url"):
        single_hub.lock_postgres(second, postgres, wait=False, out=out)
    # a waiting one gets it once the first hub's connection closes (as when it exits)
    timer = threading.Timer(1.0, first.release)
    timer.start()
    begun = time.monotonic()
    single_hub.lock_postgres(second, postgres, wait=True, out=out)
    waited = time.monotonic() - begun
    timer.join()
    second.release()
    assert 0.8 < waited < 10
    assert "waiting for the previous hub to exit (it holds the database's hub lock)" in (
        out.getvalue()
    )
