"""The hub's data dir: created private, with the database file private too."""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"
#: the pid files of the hub and of the proxy it starts
HUB_PID = "jupyterhub.pid"
PROXY_PID = "jupyterhub-proxy.pid"


def prepare(data_dir: Path, db_url: str) -> None:
    """Create ``data_dir`` (mode 0700) and make an SQLite database file and the hub's pid
    file mode 0600.

    Both are created empty before the hub opens them (it keeps an existing file's mode),
    so they are never readable by others, not even for a moment.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    private = [data_dir / HUB_PID]
    if db_url.startswith(SQLITE_PREFIX):
        private.append(Path(db_url[len(SQLITE_PREFIX) :]))
    for path in private:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
    if db_url.startswith(SQLITE_PREFIX):
        write_ahead_log(Path(db_url[len(SQLITE_PREFIX) :]))


def write_ahead_log(path: Path) -> str:
    """Put the SQLite database ``path`` in WAL mode (kept in the file); its journal mode.

    In WAL mode readers do not wait for a writer nor a writer for readers: the hub's
    database stays readable by ``jupyterhub token``, ``dlhub`` commands and backups while
    a class logs in and starts servers. The ``-wal`` and ``-shm`` files beside it take
    the database file's mode.
    """
    with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT) as db:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    db.close()
    return mode


#: Seconds an SQLite connection waits for another's write lock before it fails.
SQLITE_BUSY_TIMEOUT = 30


def db_kwargs(db_url: str) -> dict:
    """JupyterHub's ``db_kwargs`` for ``db_url`` (SQLAlchemy ``create_engine`` arguments).

    SQLite: wait up to :data:`SQLITE_BUSY_TIMEOUT` seconds for a lock instead of failing
    at once ("database is locked"), and keep JupyterHub's own ``check_same_thread``
    (setting ``connect_args`` replaces it). Postgres: a pool of connections checked before
    use, so a restarted server is reconnected to instead of failing a request.
    """
    if db_url.startswith("sqlite"):
        return {"connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT}}
    if db_url.startswith("postgresql"):
        return {"pool_size": 5, "max_overflow": 10, "pool_pre_ping": True}
    return {}


def secret(data_dir: Path, name: str) -> str:
    """A random secret kept in ``data_dir/name`` (mode 0600), made on first use."""
    path = data_dir / name
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()
