"""Spawners for dlhub: thin subclasses that add profiles and dlhub's paths."""

from __future__ import annotations

import os
from pathlib import Path

from dockerspawner import DockerSpawner as _DockerSpawner
from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import Dict, List, Unicode, default
from traitlets.config import Configurable

from . import profiles, volumes
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

    def visible_profiles(self) -> list[dict]:
        """The profiles this user may see and start (by their JupyterHub groups now)."""
        return profiles.visible(self.profiles, [g.name for g in self.user.groups])

    async def _render_options_form(self, spawner):
        previous = (spawner.user_options or {}).get("profile")
        mine = self.visible_profiles()
        capacity = None
        if any(p.get("gpus") for p in mine) and hasattr(self, "gpu_capacity"):
            capacity = await self.gpu_capacity()
        return profiles.render_form(mine, previous, capacity)

    @default("options_from_form")
    def _default_options_from_form(self):
        return profiles.options_from_form

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return self._apply_profile

    def _apply_profile(self, spawner, user_options):
        try:
            profile = profiles.choose(self.visible_profiles(), user_options)
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


class VolumesMixin(Configurable):
    """The platform's shared volumes, chosen at each start from the user's groups."""

    volumes_config = Dict(config=True, help="The platform config's `volumes` section (validated).")

    def user_mounts(self) -> list[volumes.Mount]:
        if not self.volumes_config:
            return []
        return volumes.for_user(self.volumes_config, [g.name for g in self.user.groups])


class ListeningMixin:
    """Return from ``start`` only once the server listens (see :mod:`.readiness`)."""

    async def start(self):
        ip, port = await super().start()
        await wait_for_port(ip, port, timeout=self.start_timeout, exited=self.poll)
        return ip, port


class LocalSpawner(
    ProfilesMixin, GpuMixin, VolumesMixin, ListeningMixin, SimpleLocalProcessSpawner
):
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
    volumes_dir = Unicode(
        config=True,
        help="""Directory holding dlhub's own shared volumes (`datasets`, `shared`,
        `group-<group>`), linked into each user's directory by their groups.""",
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
        self.link_volumes()
        return await super().start()

    def link_volumes(self) -> None:
        """Link this user's shared volumes into their directory; unlink group volumes of
        groups they left. (Every local server runs as the same system user: read-only is
        a file mode here, not enforced; the docker backend enforces it.)"""
        if not self.volumes_config:
            return
        home = Path(self.home_dir)
        mine = self.user_mounts()
        targets = {m.target for m in mine}
        for mount in volumes.declared(self.volumes_config):
            link = home / mount.target
            if link.is_symlink() and mount.target not in targets:
                link.unlink()
        for mount in mine:
            target = Path(mount.source or os.path.join(self.volumes_dir, mount.name))
            target.mkdir(parents=True, exist_ok=True)
            if mount.read_only and not mount.source:
                target.chmod(0o555)
            link = home / mount.target
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                if link.resolve() == target.resolve():
                    continue
                link.unlink()
            elif link.exists():
                self.log.warning("Not linking %s for %s: the path exists", link, self._log_name)
                continue
            link.symlink_to(target, target_is_directory=True)


class DockerSpawner(ProfilesMixin, GpuMixin, VolumesMixin, ListeningMixin, _DockerSpawner):
    """User servers as containers: one per user, from the image of the chosen profile.

    Container and volume names use :func:`hub_config.naming.safe_slug`; the names are
    kept in the spawner state by DockerSpawner, so a config change cannot orphan them.
    """

    default_image = Unicode(
        config=True, help="Image for profiles that name none (platform config `docker.image`)."
    )
    home_volumes = Dict(
        config=True,
        help="""The user's own volumes ({volume name template: path}); each start mounts
        these plus the shared volumes of the user's groups, and nothing else.""",
    )
    volume_owner = Unicode(
        "1000:100",
        config=True,
        help="uid:gid that must own the root of a writable shared volume (the image's user).",
    )
    _prepared = set()  # writable shared volumes whose owner was set, by this hub process

    async def start(self):
        mounts = self.user_mounts()
        for mount in mounts:
            if not mount.read_only and not mount.source:
                await self._prepare_volume(volumes.docker_volume(mount, self.prefix))
        binds = volumes.docker_binds(mounts, self.prefix, self.notebook_dir)
        self.volumes = {**self.home_volumes, **binds}
        return await super().start()

    async def _prepare_volume(self, name: str) -> None:
        """Create a writable shared volume and give its root to the image's user, once."""
        if name in DockerSpawner._prepared:
            return
        await self.docker("create_volume", name=name, labels={"dlhub.volume": name})
        host_config = await self.docker(
            "create_host_config", binds=[f"{name}:/volume"], network_mode="none"
        )
        container = await self.docker(
            "create_container",
            image=self.image,
            command=["chown", self.volume_owner, "/volume"],
            user="0",
            entrypoint=[],
            host_config=host_config,
            labels={"dlhub.volume-setup": name},
        )
        try:
            await self.docker("start", container["Id"])
            result = await self.docker("wait", container["Id"])
        finally:
            await self.docker("remove_container", container["Id"], force=True)
        if result.get("StatusCode") != 0:
            raise web.HTTPError(500, f"Setting up the shared volume {name} failed.")
        DockerSpawner._prepared.add(name)

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
