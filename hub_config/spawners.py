"""Spawners for dlhub: thin subclasses that add profiles and dlhub's paths."""

from __future__ import annotations

import os
from pathlib import Path

from dockerspawner import DockerSpawner as _DockerSpawner
from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import Dict, List, Unicode, default
from traitlets.config import Configurable

from . import profiles
from .gpu import GpuMixin
from .naming import safe_slug
from .readiness import wait_for_port
from .starter import copy_starter


class ProfilesMixin(Configurable):
    """Profiles on the spawn form; the chosen one sets CPU and memory limits.

    Mixed into a JupyterHub spawner class (before it in the bases).
    """

    profiles = List(
        Dict(),
        config=True,
        help="Validated profiles from the platform config (`profiles`).",
    )
    profile = Dict(help="The profile of the current or last start.")

    @default("options_form")
    def _default_options_form(self):
        return self._render_options_form

    async def _render_options_form(self, spawner):
        previous = (spawner.user_options or {}).get("profile")
        capacity = None
        if any(p.get("gpus") for p in self.profiles) and hasattr(self, "gpu_capacity"):
            capacity = await self.gpu_capacity()
        return profiles.render_form(self.profiles, previous, capacity)

    @default("options_from_form")
    def _default_options_from_form(self):
        return profiles.options_from_form

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return self._apply_profile

    def _apply_profile(self, spawner, user_options):
        try:
            profile = profiles.choose(self.profiles, user_options)
        except profiles.ProfileError as e:
            raise web.HTTPError(400, str(e)) from None
        self.profile = profile
        self.cpu_limit = float(profile["cpu_limit"])
        self.mem_limit = profile["mem_limit"]
        self.environment = {**self.environment, "DLHUB_PROFILE": profile["name"]}
        self.apply_profile(profile)
        self.log.info("Server %s uses profile %s", self._log_name, profile["name"])

    def apply_profile(self, profile: dict) -> None:
        """Backend-specific settings of a profile; the limits are already applied."""


class ListeningMixin:
    """Return from ``start`` only once the server listens (see :mod:`.readiness`)."""

    async def start(self):
        ip, port = await super().start()
        await wait_for_port(ip, port, timeout=self.start_timeout, exited=self.poll)
        return ip, port


class LocalSpawner(ProfilesMixin, GpuMixin, ListeningMixin, SimpleLocalProcessSpawner):
    """User servers as local processes from dlhub's user environment.

    Each user works in ``users_dir/<escaped username>``, created mode 0700.
    """

    user_env_prefix = Unicode(
        config=True,
        help="""Prefix of the Python environment that provides
        `bin/jupyterhub-singleuser` (platform config `local.user_env`).""",
    )
    users_dir = Unicode(
        config=True,
        help="Directory holding one working directory per user.",
    )
    starter_dir = Unicode(
        config=True,
        help="""Starter notebooks copied into a user's directory on their first start.
        Default: `share/dlhub/starter` in the user environment.""",
    )

    @default("starter_dir")
    def _default_starter_dir(self):
        return os.path.join(self.user_env_prefix, "share", "dlhub", "starter")

    @default("cmd")
    def _default_cmd(self):
        return [os.path.join(self.user_env_prefix, "bin", "jupyterhub-singleuser")]

    @default("home_dir")
    def _default_home_dir(self):
        return os.path.join(self.users_dir, safe_slug(self.user.name))

    def get_args(self):
        args = super().get_args()
        if os.geteuid() == 0:
            # every server runs as the hub's own user here; Jupyter refuses root without this
            args.append("--allow-root")
        return args

    def assign_gpus(self, devices):
        self.environment = {**self.environment, "CUDA_VISIBLE_DEVICES": ",".join(devices)}

    async def start(self):
        os.makedirs(self.home_dir, mode=0o700, exist_ok=True)
        copied = copy_starter(Path(self.starter_dir), Path(self.home_dir))
        if copied:
            self.log.info("Copied starter notebooks for %s: %s", self._log_name, copied)
        return await super().start()


class DockerSpawner(ProfilesMixin, GpuMixin, ListeningMixin, _DockerSpawner):
    """User servers as containers: one per user, from the image of the chosen profile.

    Container and volume names use :func:`hub_config.naming.safe_slug`; the names are
    kept in the spawner state by DockerSpawner, so a config change cannot orphan them.
    """

    default_image = Unicode(
        config=True, help="Image for profiles that name none (platform config `docker.image`)."
    )

    @default("escape")
    def _default_escape(self):
        return safe_slug

    def apply_profile(self, profile):
        self.image = profile.get("image") or self.default_image

    def assign_gpus(self, devices):
        config = dict(self.extra_host_config) if isinstance(self.extra_host_config, dict) else {}
        config.pop("device_requests", None)
        if devices:
            # exactly these GPUs, by id; the image shows none otherwise
            config["device_requests"] = [
                {"Driver": "nvidia", "DeviceIDs": list(devices), "Capabilities": [["gpu"]]}
            ]
        self.extra_host_config = config
