"""Starter notebooks kept current in a user's home without touching their edits.

Each server syncs them at start (the server extension, as the user, on every backend):
files of the starter directory that the home lacks are copied; a starter file the user
never changed is replaced by its newer version; a file the user changed, or had before,
is never overwritten; a starter file the user deleted does not come back. A manifest,
``.dlhub/starter.json`` in the home, holds the SHA-256 of each file as last copied.

Standard library only: the server extension imports it, and tests load the file alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = Path(".dlhub") / "starter.json"


@dataclass
class SyncResult:
    """What a sync did, by path relative to the home."""

    copied: list[str] = field(default_factory=list)  # new in the home
    updated: list[str] = field(default_factory=list)  # the user's copy was unchanged
    kept: list[str] = field(default_factory=list)  # the user's edits (or own file) stay


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def starter_files(src: Path) -> list[str]:
    """The regular files under ``src``, relative, sorted (hidden ones and links left out)."""
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if not name.startswith(".") and path.is_file() and not path.is_symlink():
                found.append(path.relative_to(src).as_posix())
    return found


def _read_manifest(home: Path) -> dict[str, str]:
    try:
        files = json.loads((home / MANIFEST).read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dlhub-starter-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _inside(home: Path, target: Path) -> bool:
    """Whether ``target``'s directory is the home or under it, with no link on the way."""
    here = home
    for part in target.relative_to(home).parts[:-1]:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            return False
    return True


def sync(src: Path, home: Path) -> SyncResult:
    """Bring the starter files of ``src`` into ``home`` (see the module's docstring)."""
    src, home = Path(src), Path(home)
    result = SyncResult()
    if not src.is_dir():
        return result
    recorded = _read_manifest(home)
    manifest = dict(recorded)
    for rel in starter_files(src):
        source, target = src / rel, home / rel
        if not _inside(home, target) or target.is_symlink():
            result.kept.append(rel)
            continue
        data = source.read_bytes()
        new = hashlib.sha256(data).hexdigest()
        if not target.exists():
            if rel in recorded:
                continue  # the user deleted it
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, data)
            manifest[rel] = new
            result.copied.append(rel)
        elif not target.is_file():
            result.kept.append(rel)
        else:
            current = digest(target)
            if current == new:
                manifest[rel] = new
            elif recorded.get(rel) == current:
                _write_atomically(target, data)
                manifest[rel] = new
                result.updated.append(rel)
            else:
                result.kept.append(rel)
    if manifest != recorded:
        (home / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"files": manifest}, indent=1, sort_keys=True) + "\n"
        _write_atomically(home / MANIFEST, body.encode())
    return result
