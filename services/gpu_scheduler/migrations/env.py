"""Alembic environment for the GPU scheduler's database.

The scheduler runs it through ``gpu_scheduler.store.upgrade_database`` with its own
connection (``config.attributes["connection"]``); a maintainer runs it with the ``alembic``
command and ``alembic.ini`` beside the package, the database named by ``DLHUB_GPU_DB_URL``.
Only the scheduler's own tables are looked at: the database may be shared with the hub,
which keeps its own ``alembic_version`` table.
"""

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from gpu_scheduler.store import VERSION_TABLE, Base

config = context.config
connection = config.attributes.get("connection")
if connection is None and config.config_file_name:
    # the alembic command: its logging from alembic.ini (the scheduler keeps its own)
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def include_name(name, type_, parent_names) -> bool:
    """Compare only the scheduler's tables, never the hub's in a shared database."""
    return type_ != "table" or name in Base.metadata.tables


options = dict(
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    include_name=include_name,
    # SQLite changes columns by copying the table: autogenerate writes batch operations
    render_as_batch=True,
)


def url() -> str:
    found = config.get_main_option("sqlalchemy.url") or os.environ.get("DLHUB_GPU_DB_URL")
    if not found:
        raise SystemExit("Set DLHUB_GPU_DB_URL to the scheduler's database URL.")
    return found


if context.is_offline_mode():
    context.configure(url=url(), literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
