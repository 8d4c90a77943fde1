"""The first admin's one-time setup token.

Nobody has a password when a hub starts for the first time, and the admin names
(``auth.admin_users``) are known to everyone. So that the first admin is not whoever
reaches the sign-up page first, an admin name without an account can only be claimed
through a one-time setup link:

- ``dlhub up`` asks :func:`unclaimed_admins` which admin names have no account yet; if
  any, it makes a new token with :func:`issue` (a file of mode 0600 in the data dir,
  replacing the previous one) and prints the link once, in its start-up banner;
- the hub's ``/hub/first-admin`` page (:mod:`hub_config.approval`) takes the token with
  :func:`take` (compared in constant time, removed on use) and creates the account.

A token that was used, or made by an earlier ``dlhub up``, is worth nothing.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

#: The token's file name in the hub's data dir.
TOKEN_FILE = "first-admin-token"
#: The page (under the hub's prefix, ``/hub/``) that takes the token.
PAGE = "first-admin"


def token_path(data_dir: Path) -> Path:
    return Path(data_dir) / TOKEN_FILE


def setup_link(hub_url: str, token: str) -> str:
    """The link the banner prints: ``<hub_url>/hub/first-admin#token=<token>``.

    The token is in the fragment, which a browser never sends: it reaches no request log,
    proxy or ``Referer``. The page's script moves it into the form (sent with POST) and
    takes it out of the address bar.
    """
    return f"{hub_url.rstrip('/')}/hub/{PAGE}#token={token}"


def issue(path: Path) -> str:
    """Make a new token in ``path`` (mode 0600 from creation, replacing any older one)."""
    token = secrets.token_urlsafe(32)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    os.replace(tmp, path)
    return token


def _stored(path: Path) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def matches(path: Path, candidate: str | None) -> bool:
    """Whether ``candidate`` is the current token (constant-time comparison)."""
    stored = _stored(path)
    if not stored or not candidate:
        return False
    return hmac.compare_digest(stored.encode(), candidate.encode("utf-8", "replace"))


def take(path: Path, candidate: str | None) -> bool:
    """Use up the token: True (and the token is gone) when ``candidate`` is it."""
    if not matches(path, candidate):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:  # someone else took it first
        return False
    return True


def put_back(path: Path, token: str) -> None:
    """Restore a token that was taken for an account that could not be created."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # a newer token was made meanwhile: that one counts
        return
    with os.fdopen(fd, "w") as f:
        f.write(token)


def unclaimed_admins(db_url: str, admin_users) -> list[str]:
    """The admin names without a sign-up (NativeAuthenticator's ``users_info``) in the
    hub database at ``db_url``; all of them when there is no database yet.

    An SQLite file that does not exist is not created (the hub creates it private).
    """
    names = sorted(admin_users)
    if not names:
        return []
    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///") :]).exists():
        return names
    import sqlalchemy

    engine = sqlalchemy.create_engine(db_url)
    try:
        with engine.connect() as conn:
            claimed = {
                row[0] for row in conn.execute(sqlalchemy.text("SELECT username FROM users_info"))
            }
    except sqlalchemy.exc.SQLAlchemyError:  # no such table yet: a new database
        return names
    finally:
        engine.dispose()
    return [name for name in names if name not in claimed]
