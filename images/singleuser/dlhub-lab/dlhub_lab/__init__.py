"""dlhub's additions to the user's JupyterLab.

A server extension with one endpoint, ``GET <base_url>dlhub/gpu-notices``, which the
`dlhub-gpu-notices` lab extension polls to warn the user before the GPU scheduler takes
this server's GPUs back (idle too long, or at the end of its maximum lifetime).
"""

from jupyter_server.utils import url_path_join

from .notices import GpuNoticesHandler


def _jupyter_server_extension_points():
    return [{"module": "dlhub_lab"}]


def _load_jupyter_server_extension(serverapp):
    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base_url, "dlhub/gpu-notices"), GpuNoticesHandler)]
    )
