"""Spawners for dlhub: thin subclasses that add profiles and dlhub's paths."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import docker
from dockerspawner import DockerSpawner as _DockerSpawner
from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Dict, List, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from . import (
    accounts,
    cgroups,
    docker_gpu,
    docker_token,
    profiles,
    server_env,
    shm,
    unix_accounts,
    volumes,
)
from .gpu import GpuMixin
from .naming import safe_slug
from .readiness import wait_for_port
from .spawner_contract import SpawnerContract


class ProfilesMixin(SpawnerContract):
    """Profiles on the spawn form; the chosen one sets CPU and memory limits.

    Needs from the others: the JupyterHub spawner's ``user`` (its groups choose the
    profiles shown), ``user_options``, ``cpu_limit``, ``mem_limit``, ``environment`` and
    its state methods; ``gpu_capacity()`` for the form (declared on
    :class:`~hub_config.spawner_contract.SpawnerContract`: None there, GpuMixin's answer
    when it is a base); ``apply_profile(profile)`` may be overridden by the concrete
    spawner class for its backend's settings (an image, a node selector).

    Gives the others: ``profile``, set before ``start`` (JupyterHub calls
    ``apply_user_options`` first), and kept in the spawner state.

    Order of the bases: first, ``ProfilesMixin, GpuMixin, VolumesMixin[,
    ListeningMixin], <JupyterHub spawner>``.
    """

    profiles = List(
        Dict(),
        help="""The profiles a user may start, as validated from the platform config's
        ``profiles`` (each with ``name``, ``display_name``, ``cpu_limit``,
        ``mem_limit``, and optionally ``gpus``, ``groups``, ``image``...).

        The spawn form shows those whose ``groups`` include one of the user's
        JupyterHub groups (or that name no groups). Default: none (the form is empty
        and no server can start).
        """,
    ).tag(config=True)

    @validate("cpu_limit", "mem_limit")
    def _valid_limit(self, proposal):
        # a profile's limits (JupyterHub's traits): None is no limit, 0 would be none at all
        value = proposal["value"]
        if value is not None and not value > 0:
            name = proposal["trait"].name
            raise TraitError(
                f"{name} must be more than 0 (or None: no limit), not {value!r}; "
                f"check the profiles' {name} in the platform config."
            )
        return value

    @default("options_form")
    def _default_options_form(self):
        return self._render_options_form

    def visible_profiles(self) -> list[dict]:
        """The profiles this user may see and start (by their JupyterHub groups now)."""
        return profiles.visible(self.profiles, [g.name for g in self.user.groups])

    async def _render_options_form(self, spawner):
        # a link from another site asked for a profile: chosen on the form it gets
        asked = getattr(getattr(spawner, "handler", None), "dlhub_asked_profile", None)
        previous = asked or (spawner.user_options or {}).get("profile")
        mine = self.visible_profiles()
        capacity = None
        if any(p.get("gpus") for p in mine):
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
        # Spawner._log_name ("user" or "user:server"), used in every log line of these
        # spawners: private to JupyterHub, checked against JupyterHub 6.1.1
        # (tests/unit/test_upstream_contract.py)
        self.log.info("Server %s uses profile %s", self._log_name, profile["name"])

    def apply_profile(self, profile: dict) -> None:
        """Backend-specific settings of a profile; the limits are already applied."""

    def get_state(self):
        """The profile of the running server, so that a restarted hub still knows it
        (its GPUs among other things)."""
        state = super().get_state()
        if self.profile:
            state["profile"] = dict(self.profile)
        return state

    def load_state(self, state):
        super().load_state(state)
        if isinstance(state.get("profile"), dict):
            self.profile = state["profile"]

    def clear_state(self):
        super().clear_state()
        self.profile = {}


class VolumesMixin(Configurable):
    """The platform's shared volumes, chosen at each start from the user's groups.

    Needs from the others: the JupyterHub spawner's ``user`` (its groups). Gives
    ``user_mounts()``, which the concrete spawner class turns into its backend's mounts
    (links, Docker volumes, Kubernetes claims); it overrides nothing, so its place
    among the mixins does not matter (by convention after GpuMixin, before
    ListeningMixin and the JupyterHub spawner).
    """

    volumes_config = Dict(
        help="""The platform config's ``volumes`` section, as validated: ``datasets``
        (read-only for all), ``shared`` (writable by all) and ``groups`` (one volume
        per JupyterHub group, e.g. ``{"group": "vision", "others": "read"}``).

        Default: empty (no shared volumes at all).
        """,
    ).tag(config=True)

    def user_mounts(self) -> list[volumes.Mount]:
        if not self.volumes_config:
            return []
        return volumes.for_user(self.volumes_config, [g.name for g in self.user.groups])


class ListeningMixin:
    """Return from ``start`` only once the server listens (see :mod:`.readiness`).

    Needs from the JupyterHub spawner after it: ``start`` returning ``(ip, port)``,
    ``start_timeout`` and ``poll``. Order of the bases: last of the mixins, right before
    the JupyterHub spawner (GpuMixin's ``start`` holds the lease around it). Not for
    KubeSpawner, whose ``start`` already waits for the pod.
    """

    async def start(self):
        ip, port = await super().start()
        await wait_for_port(ip, port, timeout=self.start_timeout, exited=self.poll)
        return ip, port


class LocalSpawner(ProfilesMixin, GpuMixin, VolumesMixin, ListeningMixin, LocalProcessSpawner):
    """User servers as local processes from dlhub's user environment.

    Hub run as root: each hub user gets a system account of their own (see
    :mod:`.accounts`), made at their first start, with the home
    ``users_dir/<account>`` (mode 0700, theirs). Their server runs as that account, in a
    cgroup with the profile's memory and CPU limits where the machine allows (see
    :mod:`.cgroups`); the shared folders are reached through unix groups.

    Hub run as an ordinary user: every server runs as that user (a trusted team), in
    ``users_dir/<escaped username>`` (mode 0700).
    """

    user_env_prefix = Unicode(
        help="""Prefix of the Python environment that provides
        ``bin/jupyterhub-singleuser``, e.g. ``/opt/dlhub/user-env``; its ``bin`` comes
        first on the servers' PATH.

        Set from the platform config's ``local.user_env``; no default.
        """,
    ).tag(config=True)

    users_dir = Unicode(
        help="""Directory holding one home per user, e.g. ``/var/lib/dlhub/users``
        (``<users_dir>/<account>``, mode 0700).

        Set from the platform config's ``local.users_dir``; no default.
        """,
    ).tag(config=True)

    volumes_dir = Unicode(
        help="""Directory holding dlhub's own shared volumes (``datasets``, ``shared``,
        ``group-<group>``), linked into each user's directory by their groups.

        Set from the platform config's ``local.volumes_dir``; no default.
        """,
    ).tag(config=True)

    starter_dir = Unicode(
        help="""Starter notebooks the user's server brings into their directory at each
        start (``DLHUB_STARTER_DIR``): new ones are copied, updated ones replace copies the
        user never changed, the user's edits are never overwritten.

        Default: ``share/dlhub/starter`` in the user environment (``user_env_prefix``).
        """,
    ).tag(config=True)

    account_prefix = Unicode(
        accounts.DEFAULT_PREFIX,
        help="""Hub run as root: the start of every system account dlhub makes for its
        users (``dlhub-`` gives ``dlhub-alice``), and of its unix groups
        (``dlhub_users``, ``dlhub_g_<group>``).

        Default ``dlhub-``; 1-12 lower-case letters, digits or ``-``, starting with a
        letter (room is left for the username in 32 characters). Set from the platform
        config's ``local.account_prefix``.
        """,
    ).tag(config=True)

    @validate("account_prefix")
    def _valid_account_prefix(self, proposal):
        try:
            return accounts.check_prefix(proposal["value"])
        except accounts.AccountError as e:
            raise TraitError(f"LocalSpawner.account_prefix: {e}.") from None

    account = Unicode(
        help="""The system account this user's server runs as (hub run as root; empty
        otherwise). Kept in the spawner state, so a changed prefix cannot orphan a
        running server.""",
    )
    home_dir = Unicode(help="The user's home: their server's working directory.")

    #: what the machine allows for limits (found once per hub process)
    _cgroup_support: cgroups.Support | None = None

    @property
    def system_accounts(self) -> bool:
        """Whether each user has a system account of their own (the hub runs as root)."""
        return os.geteuid() == 0

    @default("account")
    def _default_account(self):
        if not self.system_accounts:
            return ""
        return accounts.account_name(self.account_prefix, self.user.name)

    @default("starter_dir")
    def _default_starter_dir(self):
        return os.path.join(self.user_env_prefix, "share", "dlhub", "starter")

    @default("cmd")
    def _default_cmd(self):
        return [os.path.join(self.user_env_prefix, "bin", "jupyterhub-singleuser")]

    @default("home_dir")
    def _default_home_dir(self):
        name = self.account if self.system_accounts else safe_slug(self.user.name)
        return os.path.join(self.users_dir, name)

    def get_state(self):
        state = super().get_state()
        if self.account:
            state["account"] = self.account
        return state

    def load_state(self, state):
        super().load_state(state)
        if state.get("account"):
            self.account = state["account"]

    def user_env(self, env):
        """The account's (or, without accounts, the user's) name, home and shell; the user
        environment first on the PATH (a terminal's `python` and `pip`), never the hub's
        (see :mod:`.server_env`)."""
        env["USER"] = self.account or self.user.name
        env["HOME"] = self.home_dir
        env["SHELL"] = unix_accounts.SHELL
        env["DLHUB_STARTER_DIR"] = self.starter_dir
        return server_env.server_env(
            env,
            user_env_prefix=self.user_env_prefix,
            home=self.home_dir,
            own_account=self.system_accounts,
        )

    def make_preexec_fn(self, name):
        home = self.home_dir
        if not self.system_accounts:
            return lambda: os.chdir(home)
        become = super().make_preexec_fn(self.account)
        cgroup = self._cgroup
        links = self._links

        def preexec():
            # in the new process, before it runs the server (no logging here)
            if cgroup is not None:
                cgroup.join(os.getpid())
            os.umask(0o002)  # files in the shared folders stay writable by their group
            become()
            try:
                link_mounts(home, links)
            except OSError as e:  # the user's own files in the way: start without the links
                print(f"dlhub: could not link the shared folders: {e}", file=sys.stderr)

        return preexec

    def assign_gpus(self, devices):
        self.environment = {**self.environment, "CUDA_VISIBLE_DEVICES": ",".join(devices)}

    def get_env(self):
        env = super().get_env()
        # GPUs come with a lease only (assign_gpus): none without, GPU scheduling off too
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
        return env

    async def start(self):
        # read from the hub's database here, on its thread: the work below runs in another
        groups = [g.name for g in self.user.groups]
        if self.system_accounts:
            self.log.debug(
                "Server %s: account %s, home %s", self._log_name, self.account, self.home_dir
            )
            await asyncio.to_thread(self._prepare_account, groups)
        else:
            os.makedirs(self.home_dir, mode=0o700, exist_ok=True)
            for skipped in link_mounts(self.home_dir, self._volume_targets(groups)):
                self.log.warning("Not linking %s for %s: the path exists", skipped, self._log_name)
        return await super().start()

    async def wait_for_death(self, timeout=10):
        """Whether the process ended within ``timeout`` seconds, looking every
        ``death_interval`` (0.1 s). JupyterHub's own backs off to 5 s between looks: a
        server that ended 1.6 s after its SIGINT was seen gone after 3.1 s, and Ctrl-C
        on the hub waited for that."""
        deadline = time.monotonic() + timeout
        while await self.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self.death_interval)
        return True

    async def stop(self, now=False):
        try:
            return await super().stop(now=now)
        finally:
            cgroup = self._server_cgroup()
            if cgroup is not None:
                try:
                    await asyncio.to_thread(cgroup.remove)
                except (OSError, RuntimeError) as e:  # RuntimeError: the hub is shutting down
                    self.log.warning("Could not remove the cgroup of %s: %s", self._log_name, e)

    # --- hub run as root -------------------------------------------------------------

    _cgroup: cgroups.ServerCgroup | None = None
    _links: list = []

    def _server_cgroup(self) -> cgroups.ServerCgroup | None:
        if not self.system_accounts or not self.account:
            return None
        if LocalSpawner._cgroup_support is None:
            LocalSpawner._cgroup_support = cgroups.detect()
        support = LocalSpawner._cgroup_support
        if support.version is None:
            return None
        return cgroups.ServerCgroup(support.version, cgroups.group_name(self.account, self.name))

    def _prepare_account(self, groups: list[str]) -> None:
        """The account, its home, its unix groups (from the user's JupyterHub ``groups``),
        shared folders and cgroup, before the server starts (blocking: run in a thread)."""
        home = Path(self.home_dir)
        try:
            account, _ = unix_accounts.ensure_account(self.account, str(home))
        except accounts.AccountError as e:
            raise web.HTTPError(409, str(e)) from None
        new_home = not home.exists()
        if new_home:
            home.mkdir(mode=0o700)
        if new_home or home.stat().st_uid != account.pw_uid:
            unix_accounts.own_tree(home, account.pw_uid, account.pw_gid)
        os.chmod(home, 0o700)
        self._links = self._volume_targets(groups)
        self._cgroup = self._server_cgroup()
        if self._cgroup is not None:
            self._cgroup.create(self.mem_limit, self.cpu_limit)
            self.log.info(
                "Server %s runs as %s in cgroup %s",
                self._log_name,
                self.account,
                self._cgroup.dirs,
            )
        else:
            self.log.info("Server %s runs as %s (no cgroup limits)", self._log_name, self.account)

    def _volume_targets(self, groups: list[str]) -> list[tuple[str, str]]:
        """The shared volumes of a user in ``groups`` as (path in the home, directory), the
        directories made with their modes; as root also the account's unix groups."""
        if not self.volumes_config:
            return []
        mine = volumes.for_user(self.volumes_config, groups)
        if self.system_accounts:
            self._sync_groups(groups)
        volumes_dir = Path(self.volumes_dir)
        pairs = []
        for mount in mine:
            target = Path(mount.source or volumes_dir / mount.name)
            if not mount.source:
                target.mkdir(parents=True, exist_ok=True)
                if self.system_accounts:
                    self._own_volume(mount, target)
                elif mount.name == "datasets":
                    target.chmod(0o555)
            pairs.append((mount.target, str(target)))
        # group volumes of groups the user left: their links go
        kept = {m.target for m in mine}
        for mount in volumes.declared(self.volumes_config):
            if mount.target not in kept:
                pairs.append((mount.target, ""))
        return pairs

    def _sync_groups(self, mine: list[str]) -> None:
        prefix = self.account_prefix
        shared = accounts.users_group(prefix)
        wanted = {shared}
        unix_accounts.ensure_group(shared)
        for v in self.volumes_config["groups"]:
            group = accounts.volume_group(prefix, v["group"])
            unix_accounts.ensure_group(group)
            if v["group"] in mine:
                wanted.add(group)

        def managed(name):
            return name == shared or accounts.is_volume_group(prefix, name)

        unix_accounts.set_groups(self.account, wanted, managed)
        # only dlhub's accounts (and root) enter the volumes directory
        volumes_dir = Path(self.volumes_dir)
        volumes_dir.mkdir(parents=True, exist_ok=True)
        os.chown(volumes_dir, 0, unix_accounts.ensure_group(shared))
        volumes_dir.chmod(0o750)

    def _own_volume(self, mount, target: Path) -> None:
        """datasets: root's, read-only for all; shared: every dlhub account's; a group
        volume: its group's members' (others may read where ``others: read``)."""
        prefix = self.account_prefix
        if mount.name == "datasets":
            os.chown(target, 0, 0)
            target.chmod(0o755)
        elif mount.name == "shared":
            os.chown(target, 0, unix_accounts.ensure_group(accounts.users_group(prefix)))
            target.chmod(0o2770)
        else:
            v = next(
                v
                for v in self.volumes_config["groups"]
                if volumes.group_volume_name(v["group"]) == mount.name
            )
            os.chown(
                target, 0, unix_accounts.ensure_group(accounts.volume_group(prefix, v["group"]))
            )
            target.chmod(0o2775 if v["others"] == "read" else 0o2770)


def link_mounts(home: str, pairs: list[tuple[str, str]]) -> list[str]:
    """Link each (path in ``home``, directory) of a user's volumes; remove the links of
    pairs whose directory is empty (volumes the user no longer has). Returns the paths
    left alone because something else is there. Runs as the user's account when there is
    one, so it logs nothing."""
    skipped = []
    for target, directory in pairs:
        link = Path(home) / target
        if not directory:
            if link.is_symlink():
                link.unlink()
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            if os.readlink(link) == directory:
                continue
            link.unlink()
        elif link.exists():
            skipped.append(str(link))
            continue
        link.symlink_to(directory, target_is_directory=True)
    return skipped


#: The container of a user's default server, and of a named one (DockerSpawner's own
#: choice: ``--`` never occurs in an escaped name unless it was shortened, see
#: :func:`hub_config.naming.safe_slug`, so no two servers share a name).
DEFAULT_CONTAINER = "{prefix}-{username}"
NAMED_CONTAINER = "{prefix}-{username}--{servername}"


class DockerSpawner(ProfilesMixin, GpuMixin, VolumesMixin, ListeningMixin, _DockerSpawner):
    """User servers as containers: one per server, from the image of the chosen profile.

    Container and volume names use :func:`hub_config.naming.safe_slug`; the names are
    kept in the spawner state by DockerSpawner, so a config change cannot orphan them.
    A user's named servers are containers of their own (:data:`NAMED_CONTAINER`) that
    mount the same home volume.
    """

    @default("name_template")
    def _default_name_template(self):
        return NAMED_CONTAINER if self.name else DEFAULT_CONTAINER

    default_image = Unicode(
        help="""Image for profiles that name none, e.g. ``dlhub/notebook:latest``.

        Set from the platform config's ``docker.image``; no default.
        """,
    ).tag(config=True)

    home_volumes = Dict(
        help="""The user's own volumes, ``{volume name template: path in the container}``,
        e.g. ``{"dlhub-home-{username}": "/home/jovyan/work"}``.

        Each start mounts these plus the shared volumes of the user's groups, and
        nothing else. Default: none.
        """,
    ).tag(config=True)

    volume_owner = Unicode(
        "1000:100",
        help="""``uid:gid`` that must own the root of a writable shared volume: the
        image's user (and the owner of the server's token file).

        Default ``1000:100`` (jovyan:users of the Jupyter images).
        """,
    ).tag(config=True)

    @validate("volume_owner")
    def _valid_volume_owner(self, proposal):
        uid, sep, gid = proposal["value"].partition(":")
        if not (sep and uid.isdigit() and gid.isdigit()):
            raise TraitError(
                "DockerSpawner.volume_owner must be numeric uid:gid such as 1000:100, "
                f"not {proposal['value']!r}."
            )
        return proposal["value"]

    _prepared = set()  # writable shared volumes whose owner was set, by this hub process

    async def start(self):
        mounts = self.user_mounts()
        for mount in mounts:
            if not mount.read_only and not mount.source:
                await self._prepare_volume(volumes.docker_volume(mount, self.prefix))
        binds = volumes.docker_binds(mounts, self.prefix, self.notebook_dir)
        self.volumes = {**self.home_volumes, **binds}
        try:
            return await super().start()
        except docker.errors.APIError as e:
            if not docker_gpu.missing_runtime(e):
                raise
            # the lease is already given back (GpuMixin.start)
            self.log.error("Server %s needs GPUs: %s", self._log_name, e)
            raise web.HTTPError(503, docker_gpu.NO_NVIDIA_RUNTIME) from None

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
        # /dev/shm of the profile's size (Docker's default is 64 MiB), see hub_config.shm
        configured = self.extra_host_config if isinstance(self.extra_host_config, dict) else {}
        self.extra_host_config = shm.docker_host_config(configured, profile)

    def assign_gpus(self, devices):
        config = dict(self.extra_host_config) if isinstance(self.extra_host_config, dict) else {}
        config.pop("device_requests", None)
        if devices:
            # exactly these GPUs, by id; the image shows none otherwise
            config["device_requests"] = [
                {"Driver": "nvidia", "DeviceIDs": list(devices), "Capabilities": [["gpu"]]}
            ]
        self.extra_host_config = config

    def get_env(self):
        env = super().get_env()
        if not self.gpu_devices:
            # no lease, no GPU: also where the engine's default runtime is NVIDIA's and the
            # image says NVIDIA_VISIBLE_DEVICES=all (as CUDA images do), which would show
            # every GPU of the host without any device request
            env["NVIDIA_VISIBLE_DEVICES"] = "void"
            env["CUDA_VISIBLE_DEVICES"] = ""
        # the server's token is handed over in a file, not in the container's config
        for name in docker_token.TOKEN_VARS:
            env.pop(name, None)
        return env

    async def get_command(self):
        return docker_token.command(await super().get_command())

    async def create_object(self):
        obj = await super().create_object()
        token = docker_token.archive(self.api_token, self.volume_owner)
        await self.docker("put_archive", obj["Id"], docker_token.TOKEN_DIR, token)
        return obj
