"""configurable-http-proxy as the hub starts it, with its pid file private from creation."""

from __future__ import annotations

import os

from jupyterhub import proxy


class ConfigurableHTTPProxy(proxy.ConfigurableHTTPProxy):
    """JupyterHub's proxy class; its pid file is written mode 0600 (never readable by
    others, not even for a moment), like every other file of the data dir."""

    # ConfigurableHTTPProxy._write_pid_file(self): private to JupyterHub, checked against
    # JupyterHub 6.1.1, where start() calls it once the proxy runs
    # (tests/unit/test_upstream_contract.py)
    def _write_pid_file(self):
        previous = os.umask(0o077)
        try:
            super()._write_pid_file()
        finally:
            os.umask(previous)
