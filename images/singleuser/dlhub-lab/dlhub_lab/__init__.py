"""dlhub's additions to the user's JupyterLab.

A server extension with one endpoint, ``GET <base_url>dlhub/gpu-notices``, which the
`dlhub-gpu-notices` lab extension polls to warn the user before the GPU scheduler takes
this server's GPUs back (idle too long, or at the end of its maximum lifetime).

It also gives the server's ``_xsrf`` cookie the hub's cookie options (``SameSite=Lax``,
``Secure`` when the hub is served over https): JupyterHub passes them to every server in
``JUPYTERHUB_COOKIE_OPTIONS``, and jupyterhub-singleuser applies them to its log-in
cookie only. The ``_xsrf`` cookie stays readable by scripts: JupyterLab sends it back.
"""

import json
import os

from jupyter_server.utils import url_path_join

from .notices import GpuNoticesHandler


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
    base_url = settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base_url, "dlhub/gpu-notices"), GpuNoticesHandler)]
    )
