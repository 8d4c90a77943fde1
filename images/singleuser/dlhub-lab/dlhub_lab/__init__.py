"""dlhub's additions to the user's JupyterLab.

A server extension with two endpoints, which the `dlhub-gpu-notices` lab extension polls:
``GET <base_url>dlhub/gpu-notices``, to warn the user before the GPU scheduler takes this
server's GPUs back (idle too long, or at the end of its maximum lifetime), and
``GET <base_url>dlhub/gpu-usage``, the memory and utilisation of this server's GPUs for
the status bar (:mod:`.gpu_usage`).

It also gives the server's ``_xsrf`` cookie the hub's cookie options (``SameSite=Lax``,
``Secure`` when the hub is served over https): JupyterHub passes them to every server in
``JUPYTERHUB_COOKIE_OPTIONS``, and jupyterhub-singleuser applies them to its log-in
cookie only. The ``_xsrf`` cookie stays readable by scripts: JupyterLab sends it back.

At start it brings the starter notebooks into the server's root directory (the user's
home) without touching the user's edits (:mod:`.starter`), from ``DLHUB_STARTER_DIR``
(the images set it), else ``<environment>/share/dlhub/starter``.
"""

import json
import os
import sys
from pathlib import Path

from jupyter_server.utils import url_path_join

from . import starter
from .gpu_usage import GpuUsageHandler
from .notices import GpuNoticesHandler


def starter_dir() -> Path:
    """Where this environment keeps its starter notebooks."""
    configured = os.environ.get("DLHUB_STARTER_DIR")
    return Path(configured or Path(sys.prefix) / "share" / "dlhub" / "starter")


def sync_starter(serverapp) -> None:
    """Sync the starter notebooks into the server's root directory; never fails the start."""
    src = starter_dir()
    try:
        result = starter.sync(src, Path(serverapp.root_dir))
    except OSError as e:
        serverapp.log.warning("dlhub: starter notebooks from %s not synced: %s", src, e)
        return
    if result.copied or result.updated:
        serverapp.log.info(
            "dlhub: starter notebooks: new %s, updated %s", result.copied, result.updated
        )


def _jupyter_server_extension_points():
    return [{"module": "dlhub_lab"}]


def xsrf_cookie_options(hub_options: str | None) -> dict:
    """The hub's cookie options (``JUPYTERHUB_COOKIE_OPTIONS``) that the xsrf cookie takes."""
    options = json.loads(hub_options or "{}")
    return {key: options[key] for key in ("samesite", "secure") if key in options}


def _load_jupyter_server_extension(serverapp):
    settings = serverapp.web_app.settings
    xsrf = xsrf_cookie_options(os.environ.get("JUPYTERHUB_COOKIE_OPTIONS"))
    settings["xsrf_cookie_kwargs"] = {**settings.get("xsrf_cookie_kwargs", {}), **xsrf}
    sync_starter(serverapp)
    base_url = settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base_url, "dlhub/gpu-notices"), GpuNoticesHandler),
            (url_path_join(base_url, "dlhub/gpu-usage"), GpuUsageHandler),
        ],
    )
