"""The GPU scheduler's database as dlhub 0.1.0 wrote it, before its schema had versions.

``data/gpu-scheduler-0.1.0.sql`` is an SQLite dump of a database that 0.1.0's ``Store``
created (``create_all``) and saved a busy scheduler into: leases b1, a1, b2 (b2 being taken
back for carol's quota), requests c1 and d1 waiting, quota lab = 1 GPU.
``TABLES`` reproduces 0.1.0's tables, to write the same database on PostgreSQL.
"""

import sqlite3
from pathlib import Path

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text

DUMP = Path(__file__).parent / "data" / "gpu-scheduler-0.1.0.sql"

TABLES = MetaData()
Table(
    "gpu_requests",
    TABLES,
    Column("id", String(128), primary_key=True),
    Column("user", String(255), nullable=False),
    Column("server", String(255), nullable=False),
    Column("count", Integer, nullable=False),
    Column("model", String(255), nullable=True),
    Column("groups", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("submitted_at", Float, nullable=False),
    Column("idle_timeout", Float, nullable=False),
    Column("max_lifetime", Float, nullable=False),
    Column("devices", Text, nullable=True),
    Column("granted_at", Float, nullable=True),
    Column("last_active", Float, nullable=True),
    Column("borrowed", Boolean, nullable=False),
    Column("reclaiming", Boolean, nullable=False),
)
Table(
    "gpu_quotas",
    TABLES,
    Column("group", String(255), primary_key=True),
    Column("gpus", Integer, nullable=False),
)


def write_sqlite(path: Path) -> None:
    """Write 0.1.0's database to an SQLite file."""
    with sqlite3.connect(path) as connection:
        connection.executescript(DUMP.read_text())
    connection.close()


def rows() -> dict[str, set[tuple]]:
    """The rows of 0.1.0's database, by table (booleans as 0/1)."""
    connection = sqlite3.connect(":memory:")
    connection.executescript(DUMP.read_text())
    found = {t: set(connection.execute(f"SELECT * FROM {t}")) for t in TABLES.tables}
    connection.close()
    return found
