"""The life of the hub's managed services (the idle culler, the GPU scheduler on the local
and docker backends) across hub starts, stops and crashes.

JupyterHub starts a managed service as a child process and, on its own, neither restarts
one that died nor ends one when the hub is killed; it makes the service a new API token
at each start and keeps the old ones. dlhub closes those gaps:

- :func:`supervised`: each service's command runs under :mod:`hub_config.supervisor`,
  which starts it again when it dies, ends it when the hub stops it, and dies with the
  hub (``kill -9`` included), writing its pid to ``<data dir>/services/<name>.pid``;
- :func:`end_orphans`: a hub starting on a data dir ends the supervisors a previous,
  dead hub left there (found by those pid files, checked by their command line), so no
  old service keeps a port and none runs twice;
- :func:`revoke_tokens`: the API tokens of the previous runs of the managed services
  are deleted from the hub's database before the hub makes their new ones: a token of an
  old service process answers 403.

:func:`at_hub_start` does the last two, unless a hub is running on this data dir (a
``jupyterhub token`` run reads the same config).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

#: the data dir's folder of the supervisors' pid files
PID_DIR = "services"
#: the supervisor's module, as it appears in its command line
SUPERVISOR = "hub_config.supervisor"
#: seconds an orphaned supervisor has to end its service after SIGTERM
ORPHAN_GRACE = 5.0


def pid_file(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / PID_DIR / f"{name}.pid"


def supervised(services: list[dict], data_dir: Path, python: str) -> list[dict]:
    """``services`` (``JupyterHub.services``) with each managed one's command run under
    the supervisor; external services (no command) as they are (pure)."""
    out = []
    for service in services:
        if not service.get("command"):
            out.append(service)
            continue
        name = service["name"]
        command = [
            python,
            "-m",
            SUPERVISOR,
            "--name",
            name,
            "--pid-file",
            str(pid_file(data_dir, name)),
            "--",
            *service["command"],
        ]
        out.append({**service, "command": command})
    return out


def cmdline(pid: int) -> list[str]:
    """The command line of process ``pid``; [] when there is none (gone, or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    return bool(cmdline(pid))


def hub_running(data_dir: Path) -> bool:
    """Whether another live hub wrote the data dir's pid file (not this process)."""
    from .datadir import HUB_PID

    try:
        pid = int((Path(data_dir) / HUB_PID).read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    if not pid or pid == os.getpid():
        return False
    return any("jupyterhub" in part for part in cmdline(pid))


def end_orphans(data_dir: Path) -> list[int]:
    """End the supervisors (and so the services) a previous hub of ``data_dir`` left:
    only processes named in its pid files whose command line is the supervisor's with
    that very pid file. SIGTERM, then SIGKILL after :data:`ORPHAN_GRACE` seconds.
    Returns the pids ended."""
    ended = []
    folder = Path(data_dir) / PID_DIR
    for path in sorted(folder.glob("*.pid")) if folder.is_dir() else []:
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        line = cmdline(pid)
        if SUPERVISOR in line and str(path) in line and pid != os.getpid():
            os.kill(pid, signal.SIGTERM)
            ended.append(pid)
        path.unlink(missing_ok=True)
    deadline = time.monotonic() + ORPHAN_GRACE
    while any(_alive(p) for p in ended) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in ended:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    return ended


def revoke_tokens(db_url: str, names: list[str]) -> int:
    """Delete every API token of the services ``names`` from the hub's database (when it
    has JupyterHub's tables); the number deleted."""
    if not names:
        return 0
    from sqlalchemy import bindparam, create_engine, inspect, text

    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            tables = inspect(conn)
            if not (tables.has_table("api_tokens") and tables.has_table("services")):
                return 0
            statement = text(
                "DELETE FROM api_tokens WHERE service_id IN "
                "(SELECT id FROM services WHERE name IN :names)"
            ).bindparams(bindparam("names", expanding=True))
            return conn.execute(statement, {"names": list(names)}).rowcount
    finally:
        engine.dispose()


def at_hub_start(data_dir: Path, db_url: str, services: list[dict]) -> None:
    """Before the hub starts its services: end a dead hub's orphans and revoke the old
    tokens of the managed ``services``; nothing while a hub runs on ``data_dir``."""
    if hub_running(data_dir):
        return
    ended = end_orphans(data_dir)
    if ended:
        print(
            f"dlhub: ended {len(ended)} service process(es) left by a hub that did not stop "
            f"(pids {', '.join(map(str, ended))})",
            file=sys.stderr,
        )
    from sqlalchemy.exc import SQLAlchemyError

    managed = [s["name"] for s in services if s.get("command")]
    try:
        revoke_tokens(db_url, managed)
    except SQLAlchemyError as e:  # the hub's own start reports an unreachable database
        print(f"dlhub: the services' old tokens could not be revoked: {e}", file=sys.stderr)
