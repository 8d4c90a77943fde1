"""One scheduler per database: it holds an exclusive lock for its whole life.

Two schedulers on one database each grant GPUs from their own view of the leases and
overwrite each other's state (every save replaces the whole of it). On Kubernetes a
deleted scheduler pod's replacement starts while the old container may still be stopping
(``strategy: Recreate`` covers upgrades only), on the same SQLite volume; locally nothing
stops a second scheduler on the same file. So before it opens its database the scheduler
takes the hub's kind of lock (:mod:`hub_config.single_hub`, reused):

- with SQLite, an ``flock`` on ``gpu-scheduler.lock`` beside the database file, released
  by the kernel when the process ends, however it ends (``kill -9`` included);
- with Postgres, a session-level ``pg_advisory_lock`` (a key of its own, apart from the
  hub's) on a connection kept open for the scheduler's life.

Held by another scheduler: on Kubernetes it waits for it to exit, saying so every
:data:`hub_config.single_hub.WAIT_LOG_EVERY` seconds ("waiting for the previous GPU
scheduler to exit"); elsewhere it stops at once with one sentence naming the database and
the running scheduler (the hub's supervisor starts it again with a growing pause, so a
scheduler still stopping is waited for).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import make_url

#: the lock file beside an SQLite database
LOCK_FILE = "gpu-scheduler.lock"
#: the advisory lock's key on Postgres ("dlgpu" in ASCII; the hub's is "dlhub")
PG_LOCK_KEY = 0x646C677075
WHAT = "GPU scheduler"

_held = None


def hold(db_url: str, wait: bool, out=None):
    """Take the lock of the database ``db_url`` for this process's life (kept here);
    None for an in-memory database. ``wait``: wait for another holder to exit (on
    Kubernetes), else ``SystemExit`` with the reason."""
    global _held
    from hub_config import single_hub

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            return None
        database = Path(url.database)
        _held = single_hub.acquire(
            database.parent,
            wait,
            out,
            lock_file=LOCK_FILE,
            what=WHAT,
            refusal=(
                f"another GPU scheduler runs on the database {database}; stop it first, "
                "or give this one another gpus.db_url"
            ),
        )
        return _held
    lock = single_hub.HubLock(Path(), -1, 0.0)
    single_hub.lock_postgres(
        lock,
        db_url,
        wait,
        out,
        key=PG_LOCK_KEY,
        what=WHAT,
        refusal=(
            "another GPU scheduler uses the database of gpus.db_url; stop it first, "
            "or give this one a database of its own"
        ),
    )
    _held = lock
    return lock
