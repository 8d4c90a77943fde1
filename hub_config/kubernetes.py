"""The ``kubernetes`` backend: every user server is a pod, made by KubeSpawner.

The hub runs in the cluster as the Helm chart ``helm/dlhub`` deploys it; the chart tells it
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

What is decided here, in pure functions a unit test compares with dicts:

- :func:`kubernetes_traits`: the platform config and that environment as JupyterHub traits;
- :func:`volume_mounts`: the shared volumes a user's pod mounts (claims made by the chart),
  read-write or read-only by the user's groups at this start;
- :func:`gpu_placement`: the ``nvidia.com/gpu`` limit and the node selector of a lease's
  devices, whose ids the scheduler's Kubernetes inventory makes
  (:func:`gpu_scheduler.contract.parse_device`).

:class:`KubernetesSpawner` is KubeSpawner with dlhub's profiles and GPU leases, and those
volumes; everything else (pods, the home claim, watching, names kept in the spawner's state)
is KubeSpawner's own.
"""

from __future__ import annotations

import copy
import sys
from collections import Counter
from urllib.parse import urlparse

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from tornado import web
from traitlets import Float, Unicode

from gpu_scheduler.contract import SECRET_ENV, parse_device

from . import naming, token_secret, volumes
from .gpu import GpuMixin
from .spawners import ProfilesMixin, VolumesMixin

#: Where the user images keep the user's home (the image's user is jovyan, uid 1000).
HOME = "/home/jovyan"
UID = 1000
GID = 100  # the image's `users` group, which owns /opt/venv and the home

#: The node label every kubelet sets to its node's name.
HOSTNAME_LABEL = "kubernetes.io/hostname"

#: Seconds a pod may take to be scheduled and pull its image (a user image is several GB).
POD_START_TIMEOUT = 600

#: Seconds the hub waits for a running pod's server to answer (TensorFlow images import a
#: lot before JupyterLab listens).
HTTP_TIMEOUT = 120


#: How the names of users' pods and home claims begin (``pod_name_template``,
#: ``pvc_name_template`` below); the chart's object names must not.
USER_OBJECT_PREFIXES = ("jupyter-", "home-")


class KubernetesEnvError(ValueError):
    """The hub's environment lacks what the chart sets; ``str()`` is the one-line message."""


def _require(environ: dict, name: str, what: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise KubernetesEnvError(
            f"dlhub: the kubernetes backend needs the environment variable {name} ({what}); "
            "the Helm chart helm/dlhub sets it"
        )
    return value


def chart_fullname(release: str, chart: str = "dlhub") -> str:
    """The chart's ``<fullname>`` for a release, as its ``dlhub.fullname`` helper makes it
    (without ``nameOverride``/``fullnameOverride``: those set DLHUB_RELEASE_FULLNAME)."""
    name = release if chart in release else f"{release}-{chart}"
    return name[:40].rstrip("-")


def release_fullname(environ: dict) -> str:
    """``DLHUB_RELEASE_FULLNAME``, or the chart's name for ``DLHUB_RELEASE``."""
    fullname = environ.get("DLHUB_RELEASE_FULLNAME", "")
    if not fullname:
        fullname = chart_fullname(_require(environ, "DLHUB_RELEASE", "the Helm release's name"))
    if fullname.startswith(USER_OBJECT_PREFIXES):
        # <fullname>-group-<slug> could then be the claim or pod of a user's server
        raise KubernetesEnvError(
            f"dlhub: the release's name {fullname!r} starts like the names of users' pods "
            f"and homes ({', '.join(USER_OBJECT_PREFIXES)}); install it under another name"
        )
    return fullname


def claim_slug(fullname: str, group: str) -> str:
    """A group's name as it appears in its claim's name: :func:`hub_config.naming.dns_label`
    (KubeSpawner's safe slug), as long as ``<fullname>-group-<slug>`` stays within 63
    characters. ``ml-team`` stays ``ml-team``; ``ML_Team`` and ``ml.team`` become
    ``ml-team---<hash>`` with different hashes, so no two groups share a claim."""
    return naming.dns_label(group, naming.MAX_DNS_LABEL - len(f"{fullname}-group-"))


def group_claim(fullname: str, group: str) -> str:
    """The chart's claim of a group volume: ``<fullname>-group-<claim slug>``; the chart's
    ``dlhub.groupClaim`` makes the same name for ``sharedStorage.volumes[].name``."""
    return f"{fullname}-group-{claim_slug(fullname, group)}"


def volume_mounts(
    cfg_volumes: dict, user_groups, fullname: str, home: str = HOME
) -> tuple[list[dict], list[dict]]:
    """The pod volumes and container mounts of the platform's shared volumes for one user.

    ``cfg_volumes`` is the validated ``volumes`` section; ``user_groups`` the names of the
    user's JupyterHub groups now. Which volumes, where and how (read-only or not) is
    :func:`hub_config.volumes.for_user`, as on the other backends. Each is a claim:
    ``source`` when set, else the chart's ``<fullname>-datasets``, ``<fullname>-shared`` or
    ``<fullname>-group-<group>`` (:func:`group_claim`).
    """
    claims = {"datasets": f"{fullname}-datasets", "shared": f"{fullname}-shared"}
    for volume in cfg_volumes["groups"]:
        group = volume["group"]
        claims[volumes.group_volume_name(group)] = group_claim(fullname, group)
    pod_volumes, mounts = [], []
    for mount in volumes.for_user(cfg_volumes, user_groups):
        claim = {"claimName": mount.source or claims[mount.name], "readOnly": mount.read_only}
        # mount.name is a DNS label (volumes.group_volume_name), as volume names must be
        pod_volumes.append({"name": mount.name, "persistentVolumeClaim": claim})
        mounts.append(
            {
                "name": mount.name,
                "mountPath": volumes.target_path(mount, home),
                "readOnly": mount.read_only,
            }
        )
    return pod_volumes, mounts


def gpu_placement(devices, product_label: str) -> tuple[dict[str, str], dict[str, str]]:
    """The node selector and resource limits that give a pod exactly the leased GPUs.

    The pod asks for as many of each resource as it was leased and is placed on the node
    that has them, with their product (when the node is labelled). No devices: nothing.
    """
    if not devices:
        return {}, {}
    parsed = [parse_device(uuid) for uuid in devices]
    nodes = sorted({d.node for d in parsed})
    if len(nodes) > 1:
        raise ValueError(
            f"the GPUs granted ({', '.join(devices)}) are on several nodes ({', '.join(nodes)}) "
            "and a pod runs on one; ask for fewer GPUs per server"
        )
    selector = {HOSTNAME_LABEL: nodes[0]}
    products = {d.product for d in parsed if d.product}
    if len(products) == 1:
        selector[product_label] = products.pop()
    counts = Counter(d.resource for d in parsed)
    return selector, {resource: str(n) for resource, n in sorted(counts.items())}


def base_path(bind_url: str) -> str:
    """The path the hub is served under: "" or "/prefix" (from ``hub.bind_url``)."""
    return urlparse(bind_url).path.rstrip("/")


def scheduler_service(environ: dict) -> dict:
    """The GPU scheduler as an external service: the chart runs it as its own Deployment."""
    return {
        "name": "gpu-scheduler",
        "url": _require(environ, "DLHUB_GPU_SCHEDULER_URL", "the GPU scheduler's URL"),
        "api_token": _require(
            environ, "DLHUB_GPU_SCHEDULER_TOKEN", "the GPU scheduler's API token"
        ),
        "display": True,
        "oauth_no_confirm": True,
    }


def kubernetes_traits(cfg: dict, environ: dict, profiles: list[dict]) -> dict[str, dict]:
    """The traits of the kubernetes backend, merged over the generic ones by
    :func:`hub_config.mapping.traits_for` (so ``JupyterHub.services`` is the whole list).

    Raises :class:`KubernetesEnvError` (a ``ValueError``) naming a missing variable.
    """
    from .mapping import culler_service  # mapping imports this module lazily

    k8s, hub = cfg["kubernetes"], cfg["hub"]
    fullname = release_fullname(environ)
    jupyterhub = {
        # user pods reach the hub on its pod's address (through the hub's Service)
        "hub_bind_url": f"http://0.0.0.0:{hub['hub_port']}",
        "hub_connect_url": _require(
            environ, "DLHUB_HUB_CONNECT_URL", "where user pods reach the hub's API"
        ),
        # user pods outlive a hub restart; the hub finds them again
        "cleanup_servers": False,
    }
    proxy = {}
    if environ.get("DLHUB_PROXY_API_URL"):
        # the chart's proxy Deployment; its token is CONFIGPROXY_AUTH_TOKEN
        proxy = {"should_start": False, "api_url": environ["DLHUB_PROXY_API_URL"]}
    start_timeout = POD_START_TIMEOUT
    gpu = {}
    if cfg["gpus"]["enabled"]:
        service = scheduler_service(environ)
        # instead of the hub-managed scheduler of the other backends
        jupyterhub["services"] = culler_service(cfg["culling"], sys.executable) + [service]
        gpu = {
            "gpu_scheduler_url": service["url"].rstrip("/")
            + base_path(hub["bind_url"])
            + "/services/gpu-scheduler/",
            "gpu_secret": _require(
                environ, SECRET_ENV, "the secret shared with the GPU scheduler"
            ),
        }
        # the wait in the GPU queue is part of the start
        start_timeout += cfg["gpus"]["max_wait"]
    spawner = {
        "profiles": profiles,
        "default_image": k8s["image"],
        "image": k8s["image"],
        "image_pull_policy": k8s["image_pull_policy"],
        "node_selector": dict(k8s["node_selector"]),
        "gpu_product_label": k8s["gpu_product_label"],
        "release_fullname": fullname,
        # the image's entrypoint (tini) runs this: starter notebooks, then the server
        "cmd": ["dlhub-start", "jupyterhub-singleuser"],
        "start_timeout": start_timeout,
        "http_timeout": HTTP_TIMEOUT,
        # the image's user; never root, no way to become root
        "uid": UID,
        "gid": GID,
        "fs_gid": GID,
        "allow_privilege_escalation": False,
        "container_security_context": {
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # no API token in users' pods
        "service_account": None,
        "automount_service_account_token": False,
        # component: singleuser-server (KubeSpawner's) selects them in the chart's policy
        "extra_labels": {"app.kubernetes.io/instance": environ.get("DLHUB_RELEASE", fullname)},
        # the home: one claim per server, made at its first start, kept across starts
        "pod_name_template": "jupyter-{user_server}",
        "pvc_name_template": "home-{user_server}",
        "storage_pvc_ensure": True,
        "storage_capacity": k8s["home_size"],
        "storage_class": k8s["storage_class"] or None,
        "storage_access_modes": ["ReadWriteOnce"],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
        "volume_mounts": [{"name": "home", "mountPath": HOME}],
        # a pod on a GPU node sees no GPU unless it was leased some (see assign_gpus)
        "environment": {"NVIDIA_VISIBLE_DEVICES": "void"},
    }
    if environ.get("POD_NAMESPACE"):
        spawner["namespace"] = environ["POD_NAMESPACE"]
    traits = {"JupyterHub": jupyterhub, "KubernetesSpawner": spawner}
    if proxy:
        traits["ConfigurableHTTPProxy"] = proxy
    if gpu:
        traits["GpuMixin"] = gpu
    return traits


def _listed(value) -> list:
    """A KubeSpawner list-or-dict trait as a list (a dict's values, by key)."""
    if isinstance(value, dict):
        return [value[key] for key in sorted(value)]
    return list(value)


class KubernetesSpawner(ProfilesMixin, GpuMixin, VolumesMixin, KubeSpawner):
    """User servers as pods: one per server, from the image of the chosen profile.

    The profile sets the image and the CPU and memory limits (guarantees are a fraction of
    them); a GPU lease sets the ``nvidia.com/gpu`` limit and the node; the user's groups at
    this start decide which shared volumes are mounted and how. Pod and claim names come
    from KubeSpawner's safe ``{user_server}`` slugs and are kept in the spawner state. The
    server's hub token is not in the pod spec: it is in a Secret of its own, made before
    the pod and deleted at stop, which the pod's environment refers to
    (:mod:`hub_config.token_secret`).
    """

    default_image = Unicode(
        config=True,
        help="Image of profiles that name none (platform config `kubernetes.image`).",
    )
    gpu_product_label = Unicode(
        "nvidia.com/gpu.product",
        config=True,
        help="""Node label naming the GPU model; a server leased GPUs is placed on a node
        whose label has the leased model (platform config `kubernetes.gpu_product_label`).""",
    )
    release_fullname = Unicode(
        "dlhub",
        config=True,
        help="""Prefix of the chart's object names (`<fullname>`): the shared volumes'
        claims are `<fullname>-datasets`, `<fullname>-shared`, `<fullname>-group-<group>`.""",
    )
    guarantee_fraction = Float(
        0.25,
        config=True,
        help="""Share of a profile's CPU and memory limits a pod requests (is guaranteed):
        0.25 with a limit of 2 CPUs and 4G requests 0.5 CPU and 1G. 1 makes every server
        a Guaranteed pod; lower values let more servers share a node.""",
    )

    _gpu_placement_error: str | None = None

    def _configured(self, name: str):
        """A trait's value as configured, before any start of this spawner changed it."""
        saved = self.__dict__.setdefault("_dlhub_configured", {})
        if name not in saved:
            value = getattr(self, name)
            saved[name] = copy.deepcopy(dict(value) if isinstance(value, dict) else value)
        return copy.deepcopy(saved[name])

    def apply_profile(self, profile):
        self.image = profile.get("image") or self.default_image
        fraction = self.guarantee_fraction
        self.cpu_guarantee = round(self.cpu_limit * fraction, 3) if self.cpu_limit else None
        self.mem_guarantee = int(self.mem_limit * fraction) if self.mem_limit else None

    async def load_user_options(self):
        """Nothing: the profile was applied by ProfilesMixin (`apply_user_options`);
        KubeSpawner's own `profile_list` is not used."""

    def assign_gpus(self, devices):
        """The leased GPUs as an extended-resource limit on the node that has them."""
        self._gpu_placement_error = None
        try:
            selector, limits = gpu_placement(devices, self.gpu_product_label)
        except ValueError as e:
            # raised from get_pod_manifest, inside the start that gives the lease back
            self._gpu_placement_error = str(e)
            selector, limits = {}, {}
        self.node_selector = {**self._configured("node_selector"), **selector}
        configured = self._configured("extra_resource_limits")
        kept = {k: v for k, v in configured.items() if not k.startswith("nvidia.com/")}
        self.extra_resource_limits = {**kept, **limits}
        environment = dict(self.environment)
        if limits:
            # the device plugin says which GPUs the container sees
            environment.pop("NVIDIA_VISIBLE_DEVICES", None)
        else:
            environment["NVIDIA_VISIBLE_DEVICES"] = "void"
        self.environment = environment

    async def start(self):
        shared, mounts = [], []
        if self.volumes_config:
            groups = [group.name for group in self.user.groups]
            shared, mounts = volume_mounts(self.volumes_config, groups, self.release_fullname)
        self.volumes = _listed(self._configured("volumes")) + shared
        self.volume_mounts = _listed(self._configured("volume_mounts")) + mounts
        if mounts:
            self.log.info(
                "Server %s mounts %s",
                self._log_name,
                ", ".join(f"{m['mountPath']} ({'ro' if m['readOnly'] else 'rw'})" for m in mounts),
            )
        # progress() tells this start's pod from the last one by this future
        self._start_future = None
        # the token the pod's environment refers to, before the pod is made
        await self._replace_token_secret(self._split_env()[1])
        return await super().start()

    def _split_env(self) -> tuple[dict, dict[str, str]]:
        return token_secret.split_env(super().get_env(), self.secret_name)

    def get_env(self):
        """KubeSpawner's environment with the server's token taken from its Secret
        (:mod:`hub_config.token_secret`): the pod spec holds no token."""
        return self._split_env()[0]

    async def _replace_token_secret(self, data: dict[str, str]) -> None:
        """Make the server's token Secret anew (a stale one of a start the hub did not see
        end is deleted first)."""
        labels = {k: v for k, v in self.extra_labels.items() if "{" not in v}
        manifest = token_secret.secret_manifest(self.secret_name, data, labels)
        for attempt in range(5):
            await self._delete_token_secret()
            try:
                await self.api.create_namespaced_secret(
                    self.namespace, manifest, _request_timeout=self.k8s_api_request_timeout
                )
                return
            except ApiException as e:
                if e.status != 409 or attempt == 4:
                    raise

    async def _delete_token_secret(self) -> None:
        try:
            await self.api.delete_namespaced_secret(
                self.secret_name, self.namespace, _request_timeout=self.k8s_api_request_timeout
            )
        except ApiException as e:
            if e.status != 404:
                raise

    async def stop(self, now=False):
        """KubeSpawner's stop, then the server's token Secret goes (its token is revoked
        by the hub at the same time)."""
        try:
            return await super().stop(now=now)
        finally:
            try:
                await self._delete_token_secret()
            except ApiException as e:
                # the stop itself worked; the token in the Secret is revoked with it
                self.log.warning(
                    "Could not delete the token Secret %s of %s: %s %s",
                    self.secret_name,
                    self._log_name,
                    e.status,
                    e.reason,
                )

    async def get_pod_manifest(self):
        if self._gpu_placement_error:
            raise web.HTTPError(503, self._gpu_placement_error)
        return await super().get_pod_manifest()

    def _gpu_wait_over(self) -> bool:
        # a pod was asked for: from here on its events tell the progress
        return super()._gpu_wait_over() or self._start_future is not None

    async def progress(self):
        """The place in the GPU queue while the spawn waits for GPUs, then the pod's events."""
        async for event in GpuMixin.progress(self):
            yield event
        if self._start_future is None:
            return  # the spawn ended before a pod was asked for
        async for event in KubeSpawner.progress(self):
            yield event
