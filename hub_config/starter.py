"""Starter notebooks: copied into a new user's home on their first start.

A stamp file (``.dlhub/starter-copied``) marks a home as done, so a notebook the user
deleted does not come back; files the user already has are never overwritten.
The user images do the same in their entry point (``images/singleuser/dlhub-start.sh``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

STAMP = Path(".dlhub") / "starter-copied"


def copy_starter(src: Path, home: Path) -> list[str]:
    """Copy what ``src`` holds into ``home`` unless done before; return the names copied."""
    src, home = Path(src), Path(home)
    stamp = home / STAMP
    if stamp.exists() or not src.is_dir():
        return []
    copied = []
    for item in sorted(src.iterdir()):
        target = home / item.name
        if target.exists() or target.is_symlink():
            continue
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
        copied.append(item.name)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    return copied
