"""Persistence of the scheduler's state: SQLAlchemy, SQLite by default, Postgres by URL.

The whole state (queue, leases, quotas) is written as one transaction after each change,
so a crash leaves either the previous state or the new one, never half of each, and a
restarted scheduler loads exactly what was there: no lease lost, none doubled.
An SQLite file is created mode 0600 before SQLAlchemy opens it (it names every holder).

The schema is versioned with Alembic (the revisions are in ``migrations/``, the version in
the table ``gpu_scheduler_alembic_version``, apart from the hub's ``alembic_version`` when
both share a database): at start the store brings the database to the newest revision this
release knows, and refuses one written by a newer release.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    Engine,
    Float,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    inspect,
    make_url,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .model import Lease, Request
from .policy import Scheduler

log = logging.getLogger("gpu_scheduler")

MIGRATIONS = Path(__file__).with_name("migrations")
# the scheduler's own version table: a database shared with the hub keeps both apart
VERSION_TABLE = "gpu_scheduler_alembic_version"
# the revision of the tables dlhub 0.1.0 made with create_all, before versions were stored
INITIAL_REVISION = "492626b3876f"
INITIAL_COLUMNS = {
    "gpu_requests": {
        "id",
        "user",
        "server",
        "count",
        "model",
        "groups",
        "priority",
        "submitted_at",
        "idle_timeout",
        "max_lifetime",
        "devices",
        "granted_at",
        "last_active",
        "borrowed",
        "reclaiming",
    },
    "gpu_quotas": {"group", "gpus"},
}


class Base(DeclarativeBase):
    """The declarative base of the scheduler's tables (what the migrations follow)."""


class RequestRow(Base):
    """A request; the lease columns are set once it is granted."""

    __tablename__ = "gpu_requests"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user: Mapped[str] = mapped_column(String(255))
    server: Mapped[str] = mapped_column(String(255))
    count: Mapped[int] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(255), nullable=True)
    groups: Mapped[str] = mapped_column(Text, default="[]")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[float] = mapped_column(Float)
    idle_timeout: Mapped[float] = mapped_column(Float, default=0)
    max_lifetime: Mapped[float] = mapped_column(Float, default=0)
    devices: Mapped[str | None] = mapped_column(Text, nullable=True)
    granted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_active: Mapped[float | None] = mapped_column(Float, nullable=True)
    borrowed: Mapped[bool] = mapped_column(Boolean, default=False)
    reclaiming: Mapped[bool] = mapped_column(Boolean, default=False)
    #: when the place in the queue was first taken, if before ``submitted_at``
    queued_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: set while the request is orphaned (its spawn gone), keeping its place
    orphaned_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class QuotaRow(Base):
    """A group's GPU quota as last set by an admin."""

    __tablename__ = "gpu_quotas"

    group: Mapped[str] = mapped_column(String(255), primary_key=True)
    gpus: Mapped[int] = mapped_column(Integer)


def create_private(url: str) -> None:
    """Create an SQLite database file mode 0600 (nothing for other databases or memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    fd = os.open(parsed.database, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(parsed.database, 0o600)


class SchemaMismatch(RuntimeError):
    """The database holds scheduler tables this release cannot use or upgrade."""


def alembic_config() -> Config:
    """Alembic's configuration for the scheduler's migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def upgrade_database(engine: Engine) -> str:
    """Bring the scheduler's tables to the newest revision; return the revision.

    - no scheduler tables: create them and record the newest revision;
    - tables without a recorded revision (dlhub 0.1.0, before versions were stored): check
      they are 0.1.0's, record its revision, then upgrade;
    - an older revision: upgrade (an SQLite file is first copied beside itself, mode 0600);
    - a revision this release does not know (a newer release wrote it): refuse.
    """
    config = alembic_config()
    scripts = ScriptDirectory.from_config(config)
    head = scripts.get_current_head()
    known = {script.revision for script in scripts.walk_revisions()}
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        current = context.get_current_revision()
        tables = set(inspect(connection).get_table_names()) & set(Base.metadata.tables)
        columns = {
            t: {c["name"] for c in inspect(connection).get_columns(t)} for t in sorted(tables)
        }
    if current is not None and current not in known:
        raise SchemaMismatch(
            f"The GPU scheduler's database is at schema revision {current}, newer than this "
            f"release knows (its newest is {head}): run the dlhub release that wrote it, or "
            "restore the copy of the database taken before that release upgraded it."
        )
    if current == head:
        return head
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        if current is None and not tables:
            Base.metadata.create_all(connection)
            command.stamp(config, head)
            log.info("Created the GPU scheduler's tables at schema revision %s", head)
            return head
        if current is None:
            if columns != INITIAL_COLUMNS:
                raise SchemaMismatch(
                    "The GPU scheduler's database has tables "
                    f"{', '.join(sorted(columns))} but no schema revision, and they are not "
                    "those of dlhub 0.1.0: point gpus.db_url at the scheduler's own "
                    "database, or move these tables away so that it starts afresh."
                )
            command.stamp(config, INITIAL_REVISION)
            current = INITIAL_REVISION
            log.info("Recorded the GPU scheduler's tables as schema revision %s", current)
    if current != head:
        backup = backup_sqlite(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, head)
        log.info(
            "Upgraded the GPU scheduler's database from schema revision %s to %s%s",
            current,
            head,
            f" (the previous file is kept as {backup})" if backup else "",
        )
    return head


def backup_sqlite(engine: Engine) -> str | None:
    """Copy an SQLite database file beside itself, mode 0600, before it is upgraded."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    backup = f"{url.database}.{time.strftime('%Y%m%d-%H%M%S')}.bak"
    fd = os.open(backup, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    # SQLite's own backup: in WAL mode the file alone may lack the latest commits
    source, out = sqlite3.connect(url.database), sqlite3.connect(backup)
    try:
        source.backup(out)
    finally:
        out.close()
        source.close()
    return backup


#: Milliseconds an SQLite connection waits for another's write lock before it fails.
SQLITE_BUSY_MS = 30_000


def _is_sqlite_file(engine: Engine) -> bool:
    url = engine.url
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def wait_for_locks(engine: Engine) -> None:
    """Every connection of an SQLite file waits for another's write lock (a busy timeout)
    instead of failing at once with "database is locked"."""
    if not _is_sqlite_file(engine):
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.close()


def write_ahead_log(engine: Engine) -> None:
    """An SQLite file in WAL mode (kept in the file): readers such as ``dlhub`` commands
    and backups never block the scheduler's writes. Set once the database is known to be
    this release's, so a refused one is left as it was."""
    if not _is_sqlite_file(engine):
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")


class Store:
    """The scheduler's queue, leases and quotas in a database, upgraded to this release."""

    def __init__(self, url: str):
        create_private(url)
        self.engine = create_engine(url, future=True)
        wait_for_locks(self.engine)
        upgrade_database(self.engine)
        write_ahead_log(self.engine)

    def save(self, scheduler: Scheduler) -> None:
        """Replace the stored state with the scheduler's, in one transaction."""
        rows = [_row(r) for r in scheduler.queue.values()]
        rows += [_row(r, orphaned_at=since) for r, since in scheduler.orphans.values()]
        rows += [
            _row(lease.request, lease, lease.id in scheduler.taking_back)
            for lease in scheduler.leases.values()
        ]
        quotas = [QuotaRow(group=g, gpus=n) for g, n in sorted(scheduler.quotas.items())]
        with Session(self.engine) as session, session.begin():
            session.execute(delete(RequestRow))
            session.execute(delete(QuotaRow))
            session.add_all(rows + quotas)

    def load(self, scheduler: Scheduler) -> None:
        """Put the stored queue, leases and quotas into a fresh scheduler."""
        with Session(self.engine) as session:
            rows = session.scalars(select(RequestRow)).all()
            quotas = session.scalars(select(QuotaRow)).all()
            if quotas:
                scheduler.quotas = {q.group: q.gpus for q in quotas}
            for row in rows:
                request = Request(
                    id=row.id,
                    user=row.user,
                    server=row.server,
                    count=row.count,
                    submitted_at=row.submitted_at,
                    model=row.model,
                    groups=tuple(json.loads(row.groups)),
                    priority=row.priority,
                    idle_timeout=row.idle_timeout,
                    max_lifetime=row.max_lifetime,
                    queued_at=row.queued_at,
                )
                if row.devices is None and row.orphaned_at is not None:
                    scheduler.orphans[request.id] = (request, row.orphaned_at)
                    continue
                if row.devices is None:
                    scheduler.queue[request.id] = request
                    continue
                lease = Lease(
                    request,
                    tuple(json.loads(row.devices)),
                    granted_at=row.granted_at,
                    last_active=row.last_active,
                    borrowed=row.borrowed,
                )
                scheduler.restore_lease(lease, taking_back=row.reclaiming)


def _row(
    request: Request,
    lease: Lease | None = None,
    reclaiming: bool = False,
    orphaned_at: float | None = None,
) -> RequestRow:
    return RequestRow(
        id=request.id,
        user=request.user,
        server=request.server,
        count=request.count,
        model=request.model,
        groups=json.dumps(list(request.groups)),
        priority=request.priority,
        submitted_at=request.submitted_at,
        idle_timeout=request.idle_timeout,
        max_lifetime=request.max_lifetime,
        devices=json.dumps(list(lease.devices)) if lease else None,
        granted_at=lease.granted_at if lease else None,
        last_active=lease.last_active if lease else None,
        borrowed=lease.borrowed if lease else False,
        reclaiming=reclaiming,
        queued_at=request.queued_at,
        orphaned_at=orphaned_at,
    )
