"""The scheduler's database across releases: versioned with Alembic, upgraded at start.

A database written by dlhub 0.1.0 (before its schema had versions) is recorded as the
first revision and keeps its leases and queue; a new one is created at the newest revision;
the models and the migrations agree (``alembic check``); a database written by a newer
release is refused with one sentence saying what to do.
"""

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import scheduler_0_1_0
from sqlalchemy import create_engine

from gpu_scheduler import store
from gpu_scheduler.model import Device
from gpu_scheduler.policy import Scheduler
from gpu_scheduler.store import INITIAL_REVISION, VERSION_TABLE, SchemaMismatch, Store

ALEMBIC = [str(Path(sys.executable).with_name("alembic"))]
INI = str(Path(store.__file__).with_name("alembic.ini"))


def devices():
    return [Device(f"GPU-{i}", "A100", 40960, i) for i in range(3)]


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(store.alembic_config()).get_current_head()


def revision(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        found = [r[0] for r in connection.execute(f"SELECT version_num FROM {VERSION_TABLE}")]
    connection.close()
    return found


def columns(table: str) -> str:
    return ", ".join(f'"{c.name}"' for c in scheduler_0_1_0.TABLES.tables[table].columns)


def rows(path: Path) -> dict[str, set[tuple]]:
    with sqlite3.connect(path) as connection:
        # 0.1.0's columns, in its order (later revisions add columns, null on its rows)
        found = {
            t: set(connection.execute(f"SELECT {columns(t)} FROM {t}"))
            for t in store.INITIAL_COLUMNS
        }
    connection.close()
    return found


def alembic(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess:
    """The `alembic` command a maintainer runs, on the package's alembic.ini."""
    env = dict(os.environ, DLHUB_GPU_DB_URL=url)
    return subprocess.run(
        [*ALEMBIC, "-c", INI, *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_0_1_0_dump_is_what_the_reproduced_tables_make():
    """The reproduction of 0.1.0's tables (for Postgres) is faithful to the dump."""
    from sqlalchemy.schema import CreateTable

    engine = create_engine("sqlite://")
    dump = scheduler_0_1_0.DUMP.read_text()
    for table in scheduler_0_1_0.TABLES.sorted_tables:
        ddl = str(CreateTable(table).compile(engine)).strip()
        assert ddl + ";" in dump
    assert {t: set(c) for t, c in store.INITIAL_COLUMNS.items()} == {
        t: {c.name for c in table.columns} for t, table in scheduler_0_1_0.TABLES.tables.items()
    }


def test_a_database_of_0_1_0_is_upgraded_and_keeps_its_leases_and_queue(tmp_path):
    path = tmp_path / "gpu-scheduler.sqlite"
    scheduler_0_1_0.write_sqlite(path)
    path.chmod(0o600)
    before = rows(path)
    assert before == scheduler_0_1_0.rows()
    s = Scheduler(devices(), default_quota=0)
    db = Store(f"sqlite:///{path}")
    assert revision(path) == [head()]
    assert rows(path) == before  # the upgrade kept every row
    db.load(s)
    assert set(s.leases) == {"b1", "a1", "b2"}
    assert set(s.queue) == {"c1", "d1"}
    assert s.quotas == {"lab": 1}
    assert s.leases["a1"].devices == ("GPU-1",) and s.leases["a1"].last_active == 50
    assert s.leases["b1"].borrowed and s.leases["b1"].request.idle_timeout == 600
    assert s.queue["d1"].model == "A100" and s.queue["c1"].groups == ("lab",)
    db.save(s)  # written back by this release: the same rows, b2 still being taken back
    assert rows(path) == before
    # started again: nothing to do, same revision, nothing lost
    Store(f"sqlite:///{path}").load(Scheduler(devices(), default_quota=0))
    assert revision(path) == [head()] and rows(path) == before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_new_database_is_created_at_head_private_and_agrees_with_the_models(tmp_path):
    path = tmp_path / "gpu-scheduler.sqlite"
    old = os.umask(0o022)
    try:
        Store(f"sqlite:///{path}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert revision(path) == [head()]
    checked = alembic("check", url=f"sqlite:///{path}", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr


def test_the_migrations_make_what_the_models_describe(tmp_path):
    """`alembic upgrade head` on an empty database, then `alembic check`: no difference."""
    url = f"sqlite:///{tmp_path / 'migrated.sqlite'}"
    upgraded = alembic("upgrade", "head", url=url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    checked = alembic("check", url=url, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr
    assert revision(tmp_path / "migrated.sqlite") == [head()]


def test_a_database_of_a_newer_release_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "gpu-scheduler.sqlite"
    Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE {VERSION_TABLE} SET version_num = 'f00dfeedbeef'")
    connection.close()
    before = path.read_bytes()
    with pytest.raises(SchemaMismatch) as refused:
        Store(f"sqlite:///{path}")
    message = str(refused.value)
    assert "\n" not in message
    assert "f00dfeedbeef" in message and "newer than this release knows" in message
    assert "restore the copy of the database" in message
    assert path.read_bytes() == before
    # no backup either: nothing was changed (the -wal and -shm files are the WAL-mode
    # database's own, of the first store's open connection)
    kept = [p for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))]
    assert kept == [path]


def test_tables_that_are_not_the_schedulers_are_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute('CREATE TABLE gpu_quotas ("group" TEXT PRIMARY KEY, size INTEGER)')
    connection.close()
    with pytest.raises(SchemaMismatch, match="not those of dlhub 0.1.0: point gpus.db_url"):
        Store(f"sqlite:///{path}")


NEXT = '''"""A note on each quota (a stand-in for the next release's change)."""

import sqlalchemy as sa
from alembic import op

revision = "0000next0000"
down_revision = "{initial}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("gpu_quotas") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("gpu_quotas") as batch:
        batch.drop_column("note")
'''


def test_an_upgrade_runs_the_new_revisions_after_copying_the_file(tmp_path, monkeypatch):
    """A release with one more revision upgrades a 0.1.0 database; the old file is kept."""
    import shutil

    migrations = tmp_path / "migrations"
    shutil.copytree(store.MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "0000next0000_quota_note.py").write_text(
        NEXT.format(initial=head())  # one more revision after this release's newest
    )
    monkeypatch.setattr(store, "MIGRATIONS", migrations)
    data = tmp_path / "data"
    data.mkdir()
    path = data / "gpu-scheduler.sqlite"
    scheduler_0_1_0.write_sqlite(path)
    s = Scheduler(devices(), default_quota=0)
    Store(f"sqlite:///{path}").load(s)
    assert revision(path) == ["0000next0000"]
    with sqlite3.connect(path) as connection:
        assert set(connection.execute("SELECT * FROM gpu_quotas")) == {("lab", 1, None)}
    connection.close()
    assert set(s.leases) == {"b1", "a1", "b2"} and set(s.queue) == {"c1", "d1"}
    (backup,) = [p for p in data.iterdir() if p.suffix == ".bak"]
    assert backup.name.startswith("gpu-scheduler.sqlite.") and backup.suffix == ".bak"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert revision(backup) == [INITIAL_REVISION] and rows(backup) == scheduler_0_1_0.rows()
