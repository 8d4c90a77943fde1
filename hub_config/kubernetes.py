"""The ``kubernetes`` backend's spawner: every user server is a pod, made by KubeSpawner.

This module is the orchestration only: what a start, a stop and the progress do, in order.
What goes in the pod is built by pure functions (:mod:`hub_config.k8s_objects`: shared
volumes, GPU placement; :mod:`hub_config.token_secret`: the server's token Secret); the
platform config and the chart's environment become this spawner's traits in
:func:`hub_config.mapping.kubernetes_traits` (reading :mod:`hub_config.k8s_env`).

:class:`KubernetesSpawner` is KubeSpawner with dlhub's profiles and GPU leases, and those
volumes; everything else (pods, the home claim, watching, names kept in the spawner's state)
is KubeSpawner's own.
"""

from __future__ import annotations

import copy
import re

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from tornado import web
from traitlets import Float, TraitError, Unicode, validate

from . import token_secret
from .gpu import GpuMixin
from .k8s_objects import gpu_placement, listed, shm_volume, volume_mounts
from .shm import shm_bytes
from .spawners import ProfilesMixin, VolumesMixin

#: A Kubernetes object name as the chart's prefix must be (an RFC 1123 label).
KUBERNETES_NAME = re.compile(r"(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?")
#: A Kubernetes label key: an optional DNS prefix and ``/``, then a name of 1-63 characters.
LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)


class KubernetesSpawner(ProfilesMixin, GpuMixin, VolumesMixin, KubeSpawner):
    """User servers as pods: one per server, from the image of the chosen profile.

    The profile sets the image and the CPU and memory limits (guarantees are a fraction of
    them); a GPU lease sets the ``nvidia.com/gpu`` limit and the node; the user's groups at
    this start decide which shared volumes are mounted and how. Pod names come from
    KubeSpawner's safe ``{user_server}`` slugs (a pod per server, named ones included),
    the home claim's from the ``{username}`` slug (one home per user, whichever server
    mounts it); both are kept in the spawner state. The
    server's hub token is not in the pod spec: it is in a Secret of its own, made before
    the pod and deleted at stop, which the pod's environment refers to
    (:mod:`hub_config.token_secret`).
    """

    default_image = Unicode(
        help="""Image of profiles that name none, e.g. ``dlhub/singleuser:latest``.

        Set from the platform config's ``kubernetes.image``; no default.
        """,
    ).tag(config=True)

    gpu_product_label = Unicode(
        "nvidia.com/gpu.product",
        help="""Node label naming the GPU model: a server leased GPUs is placed on a node
        whose label has the leased model (e.g. ``NVIDIA-A100-SXM4-40GB``).

        Default ``nvidia.com/gpu.product`` (set by NVIDIA's GPU feature discovery); a
        Kubernetes label key, ``[prefix/]name``. Set from the platform config's
        ``kubernetes.gpu_product_label``.
        """,
    ).tag(config=True)

    release_fullname = Unicode(
        "dlhub",
        help="""Prefix of the chart's object names (``<fullname>``): the shared volumes'
        claims are ``<fullname>-datasets``, ``<fullname>-shared``,
        ``<fullname>-group-<group>``.

        Default ``dlhub``; the chart passes its fullname (e.g. ``myhub-dlhub``). Lower-case
        letters, digits and ``-``, at most 63 characters, as in a Kubernetes name.
        """,
    ).tag(config=True)

    guarantee_fraction = Float(
        0.25,
        help="""Share of a profile's CPU and memory limits a pod requests (is
        guaranteed), more than 0 and at most 1.

        Default 0.25: a limit of 2 CPUs and 4G requests 0.5 CPU and 1G. 1 makes every
        server a Guaranteed pod; lower values let more servers share a node.
        """,
    ).tag(config=True)

    @validate("guarantee_fraction")
    def _valid_guarantee_fraction(self, proposal):
        fraction = proposal["value"]
        if not 0 < fraction <= 1:
            raise TraitError(
                f"guarantee_fraction must be more than 0 and at most 1, not {fraction}."
            )
        return fraction

    @validate("release_fullname")
    def _valid_release_fullname(self, proposal):
        name = proposal["value"]
        if not KUBERNETES_NAME.fullmatch(name):
            raise TraitError(
                f"release_fullname {name!r} is not a Kubernetes name: use at most 63 "
                "lower-case letters, digits or '-', starting and ending with a letter or digit."
            )
        return name

    @validate("gpu_product_label")
    def _valid_gpu_product_label(self, proposal):
        label = proposal["value"]
        if not LABEL_KEY.fullmatch(label):
            raise TraitError(
                f"gpu_product_label {label!r} is not a Kubernetes label key such as "
                "nvidia.com/gpu.product."
            )
        return label

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

    def mount_volumes(self) -> None:
        """This start's volumes: the configured ones (the home), then the shared volumes
        the user's groups give now (:func:`hub_config.k8s_objects.volume_mounts`)."""
        shared, mounts = [], []
        if self.volumes_config:
            groups = [group.name for group in self.user.groups]
            shared, mounts = volume_mounts(self.volumes_config, groups, self.release_fullname)
        # /dev/shm of the profile's size, memory-backed (hub_config.shm)
        dshm, dshm_mounts = shm_volume(shm_bytes(self.profile)) if self.profile else ([], [])
        self.volumes = listed(self._configured("volumes")) + shared + dshm
        self.volume_mounts = listed(self._configured("volume_mounts")) + mounts + dshm_mounts
        if mounts:
            self.log.info(
                "Server %s mounts %s",
                self._log_name,
                ", ".join(f"{m['mountPath']} ({'ro' if m['readOnly'] else 'rw'})" for m in mounts),
            )

    async def start(self):
        self.mount_volumes()
        # progress() tells this start's pod from the last one by this future.
        # KubeSpawner._start_future (the pod's start, followed by KubeSpawner.progress):
        # private to KubeSpawner, checked against KubeSpawner 7.1.0
        # (tests/unit/test_upstream_contract.py); _log_name is JupyterHub 6.1.1's
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
