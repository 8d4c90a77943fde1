"""Integration fixtures: ``postgres``, a private PostgreSQL server for the test module."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hubtest import free_port, part_missing


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres():
    """A private PostgreSQL server on a free port, run as the `postgres` system user.

    Its files live in a fresh directory under /tmp (the pytest tmp tree is private to
    root, so the `postgres` user could not enter it) and are removed afterwards.
    """
    bindir = postgres_bin()
    if bindir is None:
        message = "no PostgreSQL server binaries (run `make system-packages`)"
        part_missing(message)
    root = Path(tempfile.mkdtemp(prefix="dlhub-pg-"))
    datadir, sockdir = root / "data", root / "sock"
    sockdir.mkdir()
    port = free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        for path in (root, sockdir):
            shutil.chown(path, "postgres")

    def pg(*args):
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, timeout=120)

    pg(str(bindir / "initdb"), "-D", str(datadir), "-U", "dlhub", "-A", "trust")
    options = f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1"
    pg(
        str(bindir / "pg_ctl"),
        "-D",
        str(datadir),
        "-l",
        str(root / "log"),
        "-o",
        options,
        "-w",
        "start",
    )
    try:
        yield f"postgresql://dlhub@127.0.0.1:{port}/postgres"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
