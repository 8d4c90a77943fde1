"""dlhub: TensorFlow's start-up messages follow ``TF_CPP_MIN_LOG_LEVEL`` too.

TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` (the user images set 2: errors only) once its
logging is set up, but its native libraries log a few lines while they load, before that
(absl's "All log messages before absl::InitializeLog() is called..." and the oneDNN
notice), and those reach the notebook as red stderr lines. This module (imported from a
``.pth`` file of the environment at start-up; it costs one entry on ``sys.meta_path``)
wraps the first ``import tensorflow`` of a process: what the process writes to its stderr
file descriptor meanwhile is kept aside, and written back less the lines below
``TF_CPP_MIN_LOG_LEVEL`` (0 shows everything, as TensorFlow does by default).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

#: absl's log line prefix: severity letter, date, time, thread, file:line]
_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ \S+:\d+\] ")
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}


def min_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def kept(text: str, level: int) -> str:
    """``text`` without absl's lines below ``level`` (and, above 0, its preamble).

    A line that does not start like a log line belongs to the one before it."""
    out, keep = [], True
    for line in text.splitlines(keepends=True):
        match = _LINE.match(line)
        if match:
            keep = _LEVELS[match.group(1)] >= level
        elif line.startswith(_PREAMBLE):
            if level == 0:
                out.append(line)
            keep = True  # what follows it is not part of it
            continue
        if keep:
            out.append(line)
    return "".join(out)


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):
        # get_filename, get_resource_reader, is_package...: the wrapped loader's
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        _uninstall()  # once per process: a probe (importlib.util.find_spec) runs nothing
        level = min_level()
        if level == 0:
            return self.loader.exec_module(module)
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        saved = os.dup(2)
        with tempfile.TemporaryFile(mode="w+b") as aside:
            os.dup2(aside.fileno(), 2)
            try:
                return self.loader.exec_module(module)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                aside.seek(0)
                text = kept(aside.read().decode(errors="replace"), level)
                if text:
                    sys.stderr.write(text)
                    sys.stderr.flush()


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        # the path-based finder alone (not sys.meta_path again, which would recurse)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
