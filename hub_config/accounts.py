"""System accounts of the local backend when the hub runs as root (pure: names, no I/O).

As The Littlest JupyterHub does, every hub user gets a system account of their own,
named ``<prefix><escaped username>``: the prefix (``local.account_prefix``, default
``dlhub-``) keeps dlhub's accounts apart from every other account of the machine, and the
escaping (:func:`hub_config.naming.safe_slug`) makes the name lower-case, POSIX-valid,
at most 32 characters and different for different hub users (a name that had to be
shortened ends in ``--`` and a hash of the whole username).

dlhub marks its accounts with :data:`ACCOUNT_MARK` in the comment (GECOS) field and never
uses an account of that name that it did not make.

Unix groups give access to the shared folders: :func:`users_group` (every dlhub account:
the ``shared`` folder) and :func:`volume_group` (the members of one JupyterHub group: that
group's folder). Group names hold ``_``, which account names never do (the prefix allows
only lower-case letters, digits and ``-``), so a group never takes the name of an
account or of an account's own group.
"""

from __future__ import annotations

import re

from .naming import safe_slug

#: Longest user or group name that useradd/groupadd accept on common Linux systems.
MAX_NAME = 32
#: What an account prefix may be: short enough to leave room for the username.
PREFIX_RE = re.compile(r"[a-z][a-z0-9-]{0,11}")
#: A POSIX-portable user or group name (lower case, as useradd expects by default).
NAME_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
#: The comment (GECOS) field of every account dlhub creates.
ACCOUNT_MARK = "dlhub account"
DEFAULT_PREFIX = "dlhub-"


class AccountError(ValueError):
    """A name or an existing account that dlhub must not use."""


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.fullmatch(prefix):
        raise AccountError(
            f"account prefix {prefix!r} is not allowed: use 1-12 lower-case letters, "
            "digits or '-', starting with a letter (e.g. dlhub-)"
        )
    return prefix


def account_name(prefix: str, username: str) -> str:
    """The system account of the hub user ``username``: valid, at most 32 characters,
    different for different usernames."""
    check_prefix(prefix)
    return prefix + safe_slug(username, MAX_NAME - len(prefix))


def _group_base(prefix: str) -> str:
    return check_prefix(prefix).rstrip("-") + "_"


def users_group(prefix: str) -> str:
    """The group of every dlhub account (the ``shared`` folder is theirs)."""
    return _group_base(prefix) + "users"


def volume_group(prefix: str, group: str) -> str:
    """The group of the members of the JupyterHub group ``group`` (its folder)."""
    base = _group_base(prefix) + "g_"
    return base + safe_slug(group, MAX_NAME - len(base))


def is_volume_group(prefix: str, name: str) -> bool:
    """Whether the unix group ``name`` is one of :func:`volume_group`'s names."""
    return name.startswith(_group_base(prefix) + "g_")


def is_dlhub_account(gecos: str) -> bool:
    """Whether an account's comment field says dlhub made it."""
    return gecos.split(",")[0] == ACCOUNT_MARK


def check_existing(name: str, gecos: str | None) -> None:
    """Refuse an existing account of the name ``name`` that dlhub did not make
    (``gecos`` None: no such account)."""
    if gecos is not None and not is_dlhub_account(gecos):
        raise AccountError(
            f"the system account {name} exists and was not made by dlhub; an admin must "
            "rename that account or choose another local.account_prefix"
        )


def local_mode_lines(
    prefix: str, as_root: bool, hub_user: str, limits: str | None, reason: str = ""
) -> list[str]:
    """What ``dlhub up`` says about the local backend's accounts and limits.

    ``limits``: the cgroup version that enforces the profiles' limits, or None
    (``reason`` says why not)."""
    if as_root:
        lines = [
            f"  Each user's server runs as a system account of their own ({prefix}<name>), "
            "never as root."
        ]
    else:
        lines = [
            f"  Every user's server runs as {hub_user}, the hub's own account: users share "
            "it and can read each other's files (a trusted team; run as root for one "
            "account per user)."
        ]
    if limits:
        lines.append(f"  Profiles' memory and CPU limits are enforced with cgroup {limits}.")
    else:
        lines.append(f"  Profiles' memory and CPU limits are not enforced: {reason}.")
    return lines
