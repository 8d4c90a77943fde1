"""hub_config.disk_full: which database errors mean a full disk, and what is said."""

import sqlite3

from sqlalchemy.exc import OperationalError

from hub_config.disk_full import disk_full, refusal_message


class PgError(Exception):
    def __init__(self, sqlstate):
        self.sqlstate = sqlstate


def wrapped(orig: Exception) -> OperationalError:
    return OperationalError("COMMIT", {}, orig)


def test_sqlite_and_postgres_full_disks_are_recognised():
    assert disk_full(wrapped(sqlite3.OperationalError("database or disk is full")))
    assert disk_full(wrapped(PgError("53100")))


def test_other_database_errors_are_not():
    assert not disk_full(wrapped(sqlite3.OperationalError("database is locked")))
    assert not disk_full(wrapped(PgError("57P01")))  # admin shutdown


def test_the_message_names_the_data_dir_and_its_free_space():
    message = refusal_message("/srv/dlhub/data/jupyterhub.sqlite", 12)
    assert "data dir /srv/dlhub/data is full (12 KiB free)" in message
    assert message.endswith("ask an admin to free space there.")
    assert "database server" in refusal_message(None, None)
