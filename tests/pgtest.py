"""A private PostgreSQL server for tests, from the system's binaries (`make system-packages`).

:class:`PostgresServer` makes a cluster in a fresh directory under /tmp (the pytest tmp
tree is root's alone, and the server runs as the ``postgres`` system user when the tests
run as root), starts it on a free port of 127.0.0.1, can restart it (the chaos suite's
"the hub's database went away") and removes its files when stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hubtest import free_port, part_missing


def postgres_bin() -> Path | None:
    """The directory of the newest installed PostgreSQL server's binaries."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


class PostgresServer:
    """One PostgreSQL cluster; :attr:`url` is its ``postgres`` database as user ``dlhub``."""

    def __init__(self):
        bindir = postgres_bin()
        if bindir is None:
            part_missing("no PostgreSQL server binaries (run `make system-packages`)")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="dlhub-pg-"))
        self.datadir, self.sockdir = self.root / "data", self.root / "sock"
        self.sockdir.mkdir()
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            for path in (self.root, self.sockdir):
                shutil.chown(path, "postgres")
        self.url = f"postgresql://dlhub@127.0.0.1:{self.port}/postgres"

    def _pg(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True, timeout=120)

    def _ctl(self, *args: str) -> None:
        self._pg(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args)

    def start(self) -> PostgresServer:
        """Make the cluster (the first time) and start the server; return when it accepts."""
        if not self.datadir.exists():
            self._pg(
                str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "dlhub", "-A", "trust"
            )
        options = f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1"
        self._ctl("-l", str(self.root / "log"), "-o", options, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions, close every connection)."""
        self._ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and remove its files."""
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)
