"""What the Helm chart tells a hub on Kubernetes, read in one place.

The hub runs in the cluster as the chart ``helm/dlhub`` deploys it; the chart tells it
where things are through environment variables (``helm/dlhub/templates/hub/deployment.yaml``):

==============================  ==========================================================
``DLHUB_HUB_CONNECT_URL``       where user pods reach the hub's API (required)
``DLHUB_RELEASE_FULLNAME``      the chart's object-name prefix ``<fullname>``; when unset it
                                is derived from ``DLHUB_RELEASE`` as the chart does
``DLHUB_RELEASE``               the Helm release (label ``app.kubernetes.io/instance``)
``POD_NAMESPACE``               the namespace user pods are created in (default: the
                                namespace of the hub's own service account)
``DLHUB_PROXY_API_URL``         the chart's configurable-http-proxy API; when unset the hub
                                starts a proxy itself (a hub run outside the chart: tests)
``CONFIGPROXY_AUTH_TOKEN``      the proxy's token (read by JupyterHub itself)
``DLHUB_GPU_SCHEDULER_URL``     with ``gpus.enabled``: the scheduler the chart runs, an
``DLHUB_GPU_SCHEDULER_TOKEN``   external JupyterHub service with this API token, and the
``DLHUB_GPU_SHARED_SECRET``     secret the hub's spawns present to it (the name is
                                ``gpu_scheduler.contract.SECRET_ENV``, the scheduler's too)
==============================  ==========================================================

:func:`chart_env` reads them into a :class:`ChartEnv`, which
:func:`hub_config.mapping.kubernetes_traits` maps onto traits.
"""

from __future__ import annotations

from typing import NamedTuple

from gpu_scheduler.contract import SECRET_ENV

from .k8s_objects import USER_OBJECT_PREFIXES, chart_fullname


class KubernetesEnvError(ValueError):
    """The hub's environment lacks what the chart sets; ``str()`` is the one-line message."""


class ChartEnv(NamedTuple):
    """The chart's environment of the hub, as read by :func:`chart_env`."""

    #: the chart's object-name prefix ``<fullname>``
    fullname: str
    #: the Helm release (``DLHUB_RELEASE``, else ``fullname``)
    release: str
    hub_connect_url: str
    #: "" when unset (the hub's namespace)
    namespace: str
    #: "" when unset (the hub starts its own proxy)
    proxy_api_url: str
    #: the chart's GPU scheduler; all three "" when GPU scheduling is off
    scheduler_url: str
    scheduler_token: str
    gpu_secret: str


def require(environ: dict, name: str, what: str) -> str:
    """``environ[name]``, or :class:`KubernetesEnvError` naming it when unset or empty."""
    value = environ.get(name, "")
    if not value:
        raise KubernetesEnvError(
            f"dlhub: the kubernetes backend needs the environment variable {name} ({what}); "
            "the Helm chart helm/dlhub sets it"
        )
    return value


def release_fullname(environ: dict) -> str:
    """``DLHUB_RELEASE_FULLNAME``, or the chart's name for ``DLHUB_RELEASE``."""
    fullname = environ.get("DLHUB_RELEASE_FULLNAME", "")
    if not fullname:
        fullname = chart_fullname(require(environ, "DLHUB_RELEASE", "the Helm release's name"))
    if fullname.startswith(USER_OBJECT_PREFIXES):
        # <fullname>-group-<slug> could then be the claim or pod of a user's server
        raise KubernetesEnvError(
            f"dlhub: the release's name {fullname!r} starts like the names of users' pods "
            f"and homes ({', '.join(USER_OBJECT_PREFIXES)}); install it under another name"
        )
    return fullname


def chart_env(environ: dict, gpus: bool) -> ChartEnv:
    """Read the chart's environment; ``gpus``: GPU scheduling is on, so the scheduler's
    three variables are required.

    Raises :class:`KubernetesEnvError` (a ``ValueError``) naming a missing variable.
    """
    fullname = release_fullname(environ)
    scheduler = ("", "", "")
    if gpus:
        scheduler = (
            require(environ, "DLHUB_GPU_SCHEDULER_URL", "the GPU scheduler's URL"),
            require(environ, "DLHUB_GPU_SCHEDULER_TOKEN", "the GPU scheduler's API token"),
            require(environ, SECRET_ENV, "the secret shared with the GPU scheduler"),
        )
    return ChartEnv(
        fullname,
        environ.get("DLHUB_RELEASE", fullname),
        require(environ, "DLHUB_HUB_CONNECT_URL", "where user pods reach the hub's API"),
        environ.get("POD_NAMESPACE", ""),
        environ.get("DLHUB_PROXY_API_URL", ""),
        *scheduler,
    )
