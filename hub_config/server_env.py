"""The environment of a user's server on the local backend: its PATH and Python.

A server runs ``jupyterhub-singleuser`` from the user environment (``local.user_env``).
Its PATH holds that environment's ``bin`` first, then the user's own ``~/.local/bin``
(scripts of the packages they installed), then the system's directories, and never the
hub's environment: a notebook's ``pip`` or ``python`` is the user environment's, so a
``!pip install`` cannot change the hub. Nothing of the hub's Python setup
(``PYTHONPATH``, ``PYTHONHOME``, its ``VIRTUAL_ENV``) reaches the server.

The user images do the same in their Dockerfile (``PATH``, ``TF_CPP_MIN_LOG_LEVEL``).
"""

from __future__ import annotations

import os
import sys

#: The system's directories, after the user environment's (servers run under their own
#: account, or where the hub's PATH is only the hub's venv and these).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: TensorFlow logs errors only by default (``TF_CPP_MIN_LOG_LEVEL=0`` brings its info
#: and warning lines back); the images set the same.
TF_CPP_MIN_LOG_LEVEL = "2"

#: Python variables of the hub's process that must not shape the server's Python.
HUB_PYTHON_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE")


def is_venv_bin(directory: str) -> bool:
    """Whether ``directory`` is the ``bin`` of a Python virtual environment."""
    return os.path.isfile(os.path.join(os.path.dirname(directory.rstrip("/")), "pyvenv.cfg"))


def server_path(user_env_prefix: str, home: str, inherited: str | None) -> str:
    """The server's PATH: the user environment's ``bin``, ``<home>/.local/bin``, then the
    directories of ``inherited`` (the hub's PATH; ``None``: :data:`SYSTEM_PATH`) less the
    hub's own environment and any other virtual environment's ``bin``."""
    first = [os.path.join(user_env_prefix, "bin"), os.path.join(home, ".local", "bin")]
    hub_bins = {os.path.join(sys.prefix, "bin"), os.path.dirname(sys.executable)}
    rest = []
    for directory in (inherited if inherited is not None else SYSTEM_PATH).split(os.pathsep):
        if not directory or directory in first or directory in rest:
            continue
        if directory in hub_bins or is_venv_bin(directory):
            continue
        rest.append(directory)
    return os.pathsep.join(first + rest)


def server_env(env: dict, *, user_env_prefix: str, home: str, own_account: bool) -> dict:
    """Set the PATH and Python variables of a server's environment ``env`` (in place;
    returned). ``own_account``: the server runs under a system account of its own (the
    hub runs as root), which gets :data:`SYSTEM_PATH` instead of the hub's PATH."""
    inherited = None if own_account else env.get("PATH")
    env["PATH"] = server_path(user_env_prefix, home, inherited)
    env["VIRTUAL_ENV"] = user_env_prefix
    for name in HUB_PYTHON_VARS:
        env.pop(name, None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_CPP_MIN_LOG_LEVEL)
    return env
