"""The hub database's connection between requests.

JupyterHub keeps one SQLAlchemy session for the whole hub; a request that only reads
leaves its transaction open, and with it a connection checked out of the pool until the
next commit. When the database server restarts (a Postgres upgrade, a failover) that
connection is dead, and the next request that uses it fails: a client with a valid token
is answered 403, a browser is sent to the login page. JupyterHub's check of a connection
before use (its ``engine_connect`` ping) only helps a connection taken from the pool.

:func:`log_and_release` ends every request by ending the session's transaction when it
holds no unsaved change, so between requests no connection is held and the next one is
checked, and replaced when the server went away, before it is used. That costs a
commit and JupyterHub's ping per request (about 1 ms here on SQLite), so it is done only
with a database server (:func:`wanted`): an SQLite file does not go away under the hub.
"""

from __future__ import annotations

from jupyterhub.log import log_request
from sqlalchemy.exc import SQLAlchemyError


def wanted(db_url: str) -> bool:
    """Whether requests should end their transactions: the database is a server."""
    return not db_url.startswith("sqlite")


def release(db) -> None:
    """Commit ``db``'s open transaction when it holds no pending change (a commit of a
    read-only transaction writes nothing and keeps the loaded objects, JupyterHub's
    sessions not expiring on commit); roll back when that fails."""
    if not db.in_transaction() or db.new or db.dirty or db.deleted:
        return
    try:
        db.commit()
    except SQLAlchemyError:
        db.rollback()


def log_and_release(handler) -> None:
    """Tornado's ``log_function``, called at the end of every request: JupyterHub's own
    request log line, then :func:`release` of the hub's session."""
    log_request(handler)
    db = handler.settings.get("db")
    if db is not None:
        release(db)
