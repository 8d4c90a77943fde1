"""The scheduler's database upgrade on a real PostgreSQL, sharing it with the hub's tables."""

import pytest
import scheduler_0_1_0
from sqlalchemy import create_engine, insert, text

from gpu_scheduler.model import Device
from gpu_scheduler.policy import Scheduler
from gpu_scheduler.store import VERSION_TABLE, Store, alembic_config

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_a_0_1_0_database_on_postgres_is_upgraded_beside_the_hubs_tables(postgres):
    from alembic import command
    from alembic.script import ScriptDirectory

    url = postgres.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url)
    with engine.begin() as connection:
        # the hub's own version table in the same database, as when both share one
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('3c2384c5aae1')"))
        scheduler_0_1_0.TABLES.create_all(connection)
        for table, rows in scheduler_0_1_0.rows().items():
            t = scheduler_0_1_0.TABLES.tables[table]
            names = [c.name for c in t.columns]
            records = [dict(zip(names, row, strict=True)) for row in rows]
            for record in records:
                for c in t.columns:
                    if c.type.python_type is bool:
                        record[c.name] = bool(record[c.name])
            connection.execute(insert(t), records)

    s = Scheduler([Device(f"GPU-{i}", "A100", 40960, i) for i in range(3)], default_quota=0)
    Store(url).load(s)
    assert set(s.leases) == {"b1", "a1", "b2"} and set(s.queue) == {"c1", "d1"}
    assert s.quotas == {"lab": 1} and s.leases["a1"].last_active == 50
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [
            (head,)
        ]
        # the hub's version is left as it was
        assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [
            ("3c2384c5aae1",)
        ]
    Store(url).save(s)  # started again: nothing to do; saved: the same rows
    with engine.connect() as connection:
        reclaiming = connection.execute(text("SELECT id FROM gpu_requests WHERE reclaiming"))
        assert reclaiming.all() == [("b2",)]
        # the models and the migrations agree here too, the hub's tables not compared
        config = alembic_config()
        config.attributes["connection"] = connection
        command.check(config)
    engine.dispose()
