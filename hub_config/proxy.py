"""configurable-http-proxy as the hub starts it, with its pid file private from creation,
looked at four times a second."""

from __future__ import annotations

import os

from jupyterhub import proxy
from traitlets import Float


class ConfigurableHTTPProxy(proxy.ConfigurableHTTPProxy):
    """JupyterHub's proxy class; its pid file is written mode 0600 (never readable by
    others, not even for a moment), like every other file of the data dir; and it is
    looked at more often than JupyterHub's every 5 s, so that a proxy that died is started
    again, with its routes, within a second or two."""

    check_running_interval = Float(
        0.25,
        help="""Seconds between two looks at the proxy process; a proxy found dead is
        started again and given every route.

        JupyterHub's own default is 5 (an integer); a look only polls the child process
        (no request), so dlhub looks four times a second (``0.25``).
        """,
    ).tag(config=True)

    # ConfigurableHTTPProxy._write_pid_file(self): private to JupyterHub, checked against
    # JupyterHub 6.1.1, where start() calls it once the proxy runs
    # (tests/unit/test_upstream_contract.py)
    def _write_pid_file(self):
        previous = os.umask(0o077)
        try:
            super()._write_pid_file()
        finally:
            os.umask(previous)
