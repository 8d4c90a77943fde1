"""One hub per database: the hub holds an exclusive lock for its whole life.

Two hubs writing one database corrupt each other's view of users, servers and routes.
Kubernetes starts a deleted hub pod's replacement at once, while the old container may
still be stopping (``strategy: Recreate`` covers upgrades only), and nothing stops a second
``dlhub up`` on the same data dir. So before it opens its database the hub takes:

- an ``flock`` on ``hub.lock`` in its data dir (every backend; with SQLite the database is
  in that dir; on the chart the dir is the hub's ReadWriteOnce volume, so the old and the new
  pod share it on one node). The kernel releases it when the process ends, however it ends
  (``kill -9`` included), never while it runs.
- with Postgres (``hub.db_url``), also a session-level ``pg_advisory_lock`` on a connection
  kept open for the hub's life: hubs that share the database but not a data dir (the
  chart's data dir is then an ``emptyDir``) wait for each other too.

When the lock is held, the kubernetes backend waits for the previous hub to exit, saying so
every :data:`WAIT_LOG_EVERY` seconds ("waiting for the previous hub to exit"); the pod is not
Ready meanwhile. The local and docker backends stop at once with one sentence naming the
data dir and the running hub: a second ``dlhub up`` on one data dir is a mistake, not a
restart.

``dlhub up`` takes the file lock before it reads the database (for the first admin's setup
link) and hands it to the ``jupyterhub`` it becomes (an inherited descriptor named by
:data:`FD_ENV`); ``jupyterhub_config.py`` adopts it, or takes it when the hub is started as
``jupyterhub -f`` directly. JupyterHub's subcommands (``jupyterhub token``, ...) take none.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from . import mapping
from .config import ConfigError, load_platform_config

#: the lock file in the data dir
LOCK_FILE = "hub.lock"
#: the environment variable naming the descriptor ``dlhub up`` hands to ``jupyterhub``
FD_ENV = "DLHUB_HUB_LOCK_FD"
#: seconds between two "waiting for the previous hub to exit" lines
WAIT_LOG_EVERY = 10
#: the advisory lock's key on Postgres (any constant; "dlhub" in ASCII)
PG_LOCK_KEY = 0x646C687562

_held: HubLock | None = None


class HubLock:
    """The locks one hub holds: the lock file's descriptor and, with Postgres, the
    connection holding the advisory lock. Dropping it releases them."""

    def __init__(self, path: Path, fd: int, waited: float):
        self.path = path
        self.fd = fd
        self.waited = waited
        self.pg = None  # SQLAlchemy connection holding pg_advisory_lock

    def release(self) -> None:
        if self.pg is not None:
            self.pg.close()
            self.pg = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def now() -> str:
    """The time as the lock's log lines give it: UTC, microseconds."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def holder(path: Path) -> str:
    """Who holds the lock, as its holder wrote it ("pid 12 on host h since ...")."""
    try:
        info = json.loads(path.read_text() or "{}")
        return f"pid {info['pid']} on host {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that did not say which"


def _log(message: str, out) -> None:
    print(f"dlhub: {message}", file=out, flush=True)


def acquire(
    data_dir: Path,
    wait: bool,
    out=None,
    clock=time.monotonic,
    *,
    lock_file: str = LOCK_FILE,
    what: str = "hub",
    refusal: str | None = None,
) -> HubLock:
    """Take the file lock of ``data_dir``. Held by another process: ``wait`` (log every
    :data:`WAIT_LOG_EVERY` seconds until it is free) or ``SystemExit`` with the reason.

    The GPU scheduler holds its own (``lock_file``; ``what`` it is, in the log lines;
    ``refusal``: the sentence it stops with, after the holder)."""
    out = sys.stderr if out is None else out
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / lock_file
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    started = clock()
    logged = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            pass
        if not wait:
            os.close(fd)
            if refusal is not None:
                raise SystemExit(f"dlhub: {refusal} ({holder(path)} holds {path})")
            raise SystemExit(
                f"dlhub: another hub runs on the data dir {data_dir} ({holder(path)}); "
                "stop it first (Ctrl-C where it runs), or give this one another hub.data_dir"
            )
        if logged is None or clock() - logged >= WAIT_LOG_EVERY:
            _log(f"waiting for the previous {what} to exit ({holder(path)} holds {path})", out)
            logged = clock()
        time.sleep(0.05)
    waited = clock() - started
    os.ftruncate(fd, 0)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": now()}
    os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)
    _log(f"{what} lock taken at {info['since']} ({path}; waited {waited:.2f} s)", out)
    return HubLock(path, fd, waited)


def adopt(data_dir: Path, environ) -> HubLock | None:
    """The lock ``dlhub up`` took and handed over in :data:`FD_ENV`, if that descriptor is
    this data dir's lock file and holds its lock; the variable is removed either way."""
    value = environ.pop(FD_ENV, None)
    if not value or not value.isdigit():
        return None
    fd = int(value)
    path = data_dir / LOCK_FILE
    try:
        mine, theirs = os.fstat(fd), os.stat(path)
    except OSError:
        return None
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already: a no-op
    except OSError:
        return None
    os.set_inheritable(fd, False)  # the hub's children (proxy, services) do not hold it
    return HubLock(path, fd, 0.0)


def lock_postgres(
    lock: HubLock,
    db_url: str,
    wait: bool,
    out=None,
    *,
    key: int = PG_LOCK_KEY,
    what: str = "hub",
    refusal: str | None = None,
) -> None:
    """Take the advisory lock on the hub's Postgres database, on a connection of its own
    kept open in ``lock``; held elsewhere: wait (logging) or ``SystemExit``. ``key``,
    ``what``, ``refusal``: another holder's (the GPU scheduler's), as in :func:`acquire`."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    out = sys.stderr if out is None else out
    engine = sqlalchemy.create_engine(db_url, poolclass=NullPool)
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    query = sqlalchemy.text("SELECT pg_try_advisory_lock(:key)")
    logged = None
    while not connection.execute(query, {"key": key}).scalar():
        if not wait:
            connection.close()
            raise SystemExit(
                f"dlhub: {refusal}"
                if refusal is not None
                else "dlhub: another hub uses the database of hub.db_url; stop it first, "
                "or give this one a database of its own"
            )
        if logged is None or time.monotonic() - logged >= WAIT_LOG_EVERY:
            _log(
                f"waiting for the previous {what} to exit (it holds the database's {what} lock)",
                out,
            )
            logged = time.monotonic()
        time.sleep(0.2)
    lock.pg = connection
    _log(f"database {what} lock taken at {now()}", out)


def waits(cfg: dict) -> bool:
    """Whether a hub finding the lock held waits (kubernetes) or stops (local, docker)."""
    return cfg["backend"] == "kubernetes"


def _config_and_dir(environ, cwd) -> tuple[dict, Path] | None:
    try:
        cfg = load_platform_config(environ.get("DLHUB_CONFIG") or None)
    except ConfigError:
        return None  # the hub's own start-up reports it, naming the key
    return cfg, mapping.resolve_data_dir(cfg, cwd)


def hold_for_exec(cfg: dict, data_dir: Path, environ=None) -> HubLock:
    """``dlhub up``: take the file lock and leave it to the process ``exec`` makes."""
    global _held
    environ = os.environ if environ is None else environ
    lock = acquire(data_dir, waits(cfg))
    os.set_inheritable(lock.fd, True)
    environ[FD_ENV] = str(lock.fd)
    _held = lock
    return lock


def hold_for_hub(argv=None, environ=None, cwd=None) -> HubLock | None:
    """``jupyterhub_config.py``: hold the hub's locks (adopted from ``dlhub up`` or taken
    now) before the hub opens its database; None for JupyterHub's subcommands and for a
    platform config the hub's start-up will refuse anyway."""
    global _held
    if _held is not None and _held.fd >= 0:
        return _held  # the config loaded twice in one process
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    if len(argv) > 1 and not argv[1].startswith("-"):
        return None  # `jupyterhub token ...`, `jupyterhub upgrade-db`: not a hub
    found = _config_and_dir(environ, os.getcwd() if cwd is None else cwd)
    if found is None:
        return None
    cfg, data_dir = found
    lock = adopt(data_dir, environ) or acquire(data_dir, waits(cfg))
    db_url = mapping.db_url(cfg, data_dir)
    if db_url.startswith("postgresql"):
        lock_postgres(lock, db_url, waits(cfg))
    _held = lock
    return lock
