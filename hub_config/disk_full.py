"""A start refused in words when the hub's database has no space left on its disk.

JupyterHub writes the new server to its database before the spawner runs; on a full
disk that write fails (SQLite: ``database or disk is full``; PostgreSQL: SQLSTATE 53100)
and the request was answered ``500 Internal Server Error``, the cause only in the hub's
log. :class:`DiskFullRefusal` answers ``507 Insufficient Storage`` with one sentence
naming the disk (for SQLite, the data dir holding the database, and its free space) and
what to do; JupyterHub has already rolled its session back, and nothing of the start is
kept. The handlers of :mod:`hub_config.spawn_limits` put it first in their bases.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.exc import OperationalError
from tornado import web

#: SQLite's and PostgreSQL's (SQLSTATE class 53, ``disk_full``) words for a full disk
SQLITE_FULL = "database or disk is full"
POSTGRES_DISK_FULL = "53100"


def disk_full(error: Exception) -> bool:
    """Whether a database error says its disk is full (pure)."""
    orig = getattr(error, "orig", None)
    if getattr(orig, "sqlstate", None) == POSTGRES_DISK_FULL:
        return True
    return SQLITE_FULL in str(orig or error)


def free_kib(directory: Path) -> int | None:
    """Free KiB on the file system of ``directory`` (None when it cannot be read)."""
    try:
        return shutil.disk_usage(directory).free // 1024
    except OSError:
        return None


def refusal_message(database_file: str | None, free: int | None) -> str:
    """What the person starting a server is told (pure). ``database_file``: the SQLite
    file (None: a database server)."""
    if database_file is None:
        return (
            "The hub's database server has no space left on its disk, so no server can be "
            "started now: ask an admin to free space there."
        )
    directory = Path(database_file).parent
    left = "" if free is None else f" ({free} KiB free)"
    return (
        f"The disk of the hub's data dir {directory} is full{left}, so no server can be "
        "started now: ask an admin to free space there."
    )


class DiskFullRefusal:
    """``spawn_single_user`` refused with 507 and :func:`refusal_message` when the
    database's disk is full.

    Needs JupyterHub's ``BaseHandler`` after it in the bases (``spawn_single_user``,
    ``db``). Order of the bases: first, then any other mixin, then JupyterHub's handler.
    """

    async def spawn_single_user(self, user, server_name="", display_name="", options=None):
        try:
            return await super().spawn_single_user(
                user, server_name, display_name, options=options
            )
        except OperationalError as e:
            if not disk_full(e):
                raise
            self.db.rollback()
            url = self.db.get_bind().url
            database = url.database if url.get_backend_name() == "sqlite" else None
            free = free_kib(Path(database).parent) if database else None
            message = refusal_message(database, free)
            self.log.error("Start of %s's server refused: %s", user.name, message)
            raise web.HTTPError(507, message) from None
