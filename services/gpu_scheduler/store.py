"""Persistence of the scheduler's state: SQLAlchemy, SQLite by default, Postgres by URL.

The whole state (queue, leases, quotas) is written as one transaction after each change,
so a crash leaves either the previous state or the new one, never half of each, and a
restarted scheduler loads exactly what was there: no lease lost, none doubled.
An SQLite file is created mode 0600 before SQLAlchemy opens it (it names every holder).
"""

from __future__ import annotations

import json
import os

from sqlalchemy import (
    Boolean,
    Float,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    make_url,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .model import Lease, Request
from .policy import Scheduler


class Base(DeclarativeBase):
    pass


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


class QuotaRow(Base):
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


class Store:
    def __init__(self, url: str):
        create_private(url)
        self.engine = create_engine(url, future=True)
        Base.metadata.create_all(self.engine)

    def save(self, scheduler: Scheduler) -> None:
        """Replace the stored state with the scheduler's, in one transaction."""
        rows = [_row(r) for r in scheduler.queue.values()]
        rows += [
            _row(lease.request, lease, lease.id in scheduler.reclaiming)
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
                )
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
                scheduler.restore_lease(lease, reclaiming=row.reclaiming)


def _row(request: Request, lease: Lease | None = None, reclaiming: bool = False) -> RequestRow:
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
    )
