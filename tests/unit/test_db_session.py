"""hub_config.db_session: a request that only read leaves no transaction (and so no
connection) open; one with unsaved changes is left to JupyterHub."""

from jupyterhub import orm

from hub_config.db_session import release, wanted


def session():
    return orm.new_session_factory("sqlite:///:memory:")()


def test_a_read_only_transaction_is_ended():
    db = session()
    db.add(orm.User(name="erin"))
    db.commit()
    user = db.query(orm.User).filter_by(name="erin").one()
    assert db.in_transaction()
    release(db)
    assert not db.in_transaction()
    # the loaded objects stay usable without a new query
    assert "name" in user.__dict__ and user.name == "erin"


def test_unsaved_changes_are_left_alone():
    db = session()
    db.add(orm.User(name="erin"))
    db.commit()
    db.query(orm.User).filter_by(name="erin").one().admin = True
    release(db)
    assert db.in_transaction() and db.dirty
    db.rollback()
    assert not db.query(orm.User).filter_by(name="erin").one().admin


def test_only_a_database_server_needs_it():
    assert wanted("postgresql://dlhub@db:5432/hub")
    assert not wanted("sqlite:////srv/dlhub/data/jupyterhub.sqlite")


def test_nothing_open_nothing_done():
    db = session()
    release(db)
    assert not db.in_transaction()
