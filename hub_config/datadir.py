"""The hub's data dir: created private, with the database file private too."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"
#: the pid files of the hub and of the proxy it starts
HUB_PID = "jupyterhub.pid"
PROXY_PID = "jupyterhub-proxy.pid"


def prepare(data_dir: Path, db_url: str) -> None:
    """Create ``data_dir`` (mode 0700) and make an SQLite database file and the hub's pid
    file mode 0600.

    Both are created empty before the hub opens them (it keeps an existing file's mode),
    so they are never readable by others, not even for a moment.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    private = [data_dir / HUB_PID]
    if db_url.startswith(SQLITE_PREFIX):
        private.append(Path(db_url[len(SQLITE_PREFIX) :]))
    for path in private:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)


def secret(data_dir: Path, name: str) -> str:
    """A random secret kept in ``data_dir/name`` (mode 0600), made on first use."""
    path = data_dir / name
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()
