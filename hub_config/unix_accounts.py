"""System accounts and groups of the local backend (thin: useradd, groupadd, gpasswd).

The names come from :mod:`hub_config.accounts`. Every change goes through the system's
own tools, one at a time (they lock ``/etc/passwd`` and ``/etc/group``).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .accounts import ACCOUNT_MARK, check_existing

SHELL = "/bin/bash"
_lock = threading.Lock()


class CommandError(RuntimeError):
    """A system tool (useradd, groupadd, gpasswd) failed; the message holds its output."""


def _run(*command: str, attempts: int = 20) -> None:
    """Run a tool; when another process holds the account files' lock, try again."""
    for attempt in range(attempts):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        output = (result.stderr or result.stdout).strip()
        if result.returncode == 0:
            return
        if "try again" not in output or attempt == attempts - 1:
            raise CommandError(f"{' '.join(command)} failed ({result.returncode}): {output}")
        time.sleep(0.25)


def lookup(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def ensure_account(name: str, home: str) -> tuple[pwd.struct_passwd, bool]:
    """The account ``name`` with home ``home``: made (no password, its own group) when
    missing. Returns it and whether it was made now.

    Raises :class:`hub_config.accounts.AccountError` for an account of that name that
    dlhub did not make."""
    with _lock:
        existing = lookup(name)
        check_existing(name, existing.pw_gecos if existing else None)
        if existing is None:
            _run(
                "useradd",
                "--comment",
                ACCOUNT_MARK,
                "--home-dir",
                home,
                "--no-create-home",
                "--shell",
                SHELL,
                "--user-group",
                name,
            )
            return pwd.getpwnam(name), True
        if existing.pw_dir != home:
            _run("usermod", "--home", home, name)
        return pwd.getpwnam(name), False


def ensure_group(name: str) -> int:
    """The gid of the group ``name``, made when missing."""
    with _lock:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            _run("groupadd", name)
        return grp.getgrnam(name).gr_gid


def set_groups(account: str, wanted: set[str], managed: Callable[[str], bool]) -> None:
    """Make ``account`` a member of exactly the ``wanted`` groups among those ``managed``
    says are dlhub's (other groups are left alone)."""
    with _lock:
        for group in grp.getgrall():
            if not managed(group.gr_name):
                continue
            member = account in group.gr_mem
            if group.gr_name in wanted and not member:
                _run("gpasswd", "--add", account, group.gr_name)
            elif group.gr_name not in wanted and member:
                _run("gpasswd", "--delete", account, group.gr_name)


def own_tree(path: Path, uid: int, gid: int) -> None:
    """Give ``path`` and everything below it to ``uid:gid`` (links themselves, never
    what they point at)."""
    _run("chown", "-R", "-h", f"{uid}:{gid}", str(path))


def closed_dir(path: str | os.PathLike, include_self: bool = True) -> Path | None:
    """The first directory on the way to ``path`` that other users cannot enter
    (no ``o+x``), or None when every one of them can be entered."""
    path = Path(path).absolute()
    chain = list(reversed(path.parents)) + ([path] if include_self else [])
    for directory in chain:
        try:
            mode = directory.stat().st_mode
        except FileNotFoundError:
            return None  # made later, by the hub, with a mode that lets them in
        if not mode & stat.S_IXOTH:
            return directory
    return None


def prepare_local_dirs(users_dir: str, volumes_dir: str, user_env: str) -> str | None:
    """Hub run as root: make the users' and volumes' directories, and check that every
    account can reach them and run the user environment. Returns what is wrong, naming
    the platform config key, or None."""
    for path in (users_dir, os.path.dirname(volumes_dir.rstrip("/"))):
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o755)
            os.chmod(path, 0o711 if path == users_dir else 0o755)
    python = os.path.realpath(os.path.join(user_env, "bin", "python"))
    checks = [
        ("local.users_dir", users_dir, True),
        ("local.volumes_dir", volumes_dir, False),
        ("local.user_env", user_env, True),
        ("local.user_env", python, False),
    ]
    for key, path, include_self in checks:
        closed = closed_dir(path, include_self)
        if closed is not None:
            mode = stat.S_IMODE(closed.stat().st_mode)
            return (
                f"{key}: {path} is out of reach of the users' accounts because other users "
                f"cannot enter {closed} (mode {mode:04o}); choose a path outside it"
                + (
                    " (`make` as root builds the user environment in /opt/dlhub/user-env)"
                    if key == "local.user_env"
                    else ""
                )
                + f" or open it with `chmod o+x {closed}`"
            )
    return None
