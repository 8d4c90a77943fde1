"""The platform config mapped onto JupyterHub traits, by explicit tables.

:func:`traits_for` is pure: given a validated platform config (see
:mod:`hub_config.config`) and where things live, it returns
``{"Section": {"trait": value}}``. :func:`apply` copies that onto a traitlets
``Config`` such as the ``c`` of ``jupyterhub_config.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from gpu_scheduler.contract import SECRET_ENV

from . import datadir
from .first_admin import TOKEN_FILE as FIRST_ADMIN_TOKEN

#: Scopes of the idle culler's role: list servers and their activity, stop servers.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]

SPAWNER_CLASSES = {
    "local": "hub_config.spawners.LocalSpawner",
    "docker": "hub_config.spawners.DockerSpawner",
    "kubernetes": "hub_config.kubernetes.KubernetesSpawner",
}

#: Name template of the docker backend's home volumes ({username} is escaped by the spawner).
HOME_VOLUME = "{prefix}-home-{{username}}"

#: The hub's page templates of dlhub (package data): page.html, the account pages.
TEMPLATES = Path(__file__).parent / "templates"


def resolve_data_dir(cfg: dict, cwd: str | os.PathLike) -> Path:
    """The absolute data dir: ``hub.data_dir`` taken from ``cwd`` when relative."""
    return (Path(cwd) / cfg["hub"]["data_dir"]).resolve()


def db_url(cfg: dict, data_dir: Path) -> str:
    """``hub.db_url``, or the SQLite file in the data dir when it is null."""
    return cfg["hub"]["db_url"] or f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"


def user_env(cfg: dict, environ: dict, hub_prefix: str) -> str:
    """The prefix of the Python environment user servers run from (local backend)."""
    return cfg["local"]["user_env"] or environ.get("DLHUB_USER_ENV") or hub_prefix


#: Where users' homes and dlhub's shared folders are when the hub runs as root (the
#: data dir is root's alone then, and every user's account must reach these).
ROOT_USERS_DIR = "/home"
ROOT_VOLUMES_DIR = "/srv/dlhub/volumes"


def local_dirs(cfg: dict, data_dir: Path, as_root: bool) -> tuple[str, str]:
    """``local.users_dir`` and ``local.volumes_dir``, or their defaults: outside the data
    dir when the hub runs as root, inside it otherwise."""
    local = cfg["local"]
    if as_root:
        defaults = (ROOT_USERS_DIR, ROOT_VOLUMES_DIR)
    else:
        defaults = (str(data_dir / "users"), str(data_dir / "volumes"))
    return local.get("users_dir") or defaults[0], local.get("volumes_dir") or defaults[1]


def cookie_options(bind_url: str) -> dict:
    """Options of every cookie the hub sets: ``SameSite=Lax`` (a page on another site
    cannot send the hub's cookies with its forms or scripts), and ``Secure`` when the hub
    is served over https (``hub.bind_url``), so a browser never sends them in clear."""
    options = {"samesite": "Lax"}
    if urlparse(bind_url).scheme == "https":
        options["secure"] = True
    return options


def culler_service(culling: dict, python: str) -> list[dict]:
    """The hub-managed idle-culler service, or nothing when culling is disabled."""
    if not culling["enabled"]:
        return []
    return [
        {
            "name": "idle-culler",
            "command": [
                python,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={culling['timeout']}",
                f"--cull-every={culling['every']}",
                f"--max-age={culling['max_age']}",
            ],
        }
    ]


def culler_roles(culling: dict) -> list[dict]:
    if not culling["enabled"]:
        return []
    return [
        {
            "name": "idle-culler",
            "description": "Stop idle servers (dlhub culling settings).",
            "scopes": list(CULLER_SCOPES),
            "services": ["idle-culler"],
        }
    ]


#: Scopes of the GPU scheduler's role: read users' groups, see and stop servers, and read
#: the servers' spawner state (which GPU lease a server runs with; no write API exists).
SCHEDULER_SCOPES = [
    "list:users",
    "read:users:groups",
    "read:users:activity",
    "read:servers",
    "admin:server_state",
    "delete:servers",
]


#: Scopes of a user server's own token: the server role's, and the GPU scheduler's API
#: (JupyterLab asks it for the server's GPU notices).
SERVER_TOKEN_SCOPES = [
    "users:activity!user",
    "access:servers!server",
    "access:services!service=gpu-scheduler",
]


def gpu_scheduler_service(
    cfg: dict,
    data_dir: Path,
    python: str,
    config_file: str | None,
    secret: str = "",
    host: str = "127.0.0.1",
):
    """The hub-managed GPU scheduler service and the roles around it (or nothing).

    ``host``: where it listens; on the docker backend the user network's gateway, so that
    user containers reach it as they reach the hub."""
    gpus = cfg["gpus"]
    if not gpus["enabled"]:
        return [], []
    db = gpus["db_url"] or f"sqlite:///{data_dir / 'gpu-scheduler.sqlite'}"
    env = {"DLHUB_GPU_DB_URL": db, SECRET_ENV: secret}
    if config_file:
        env["DLHUB_CONFIG"] = config_file
    service = {
        "name": "gpu-scheduler",
        "url": f"http://{host}:{gpus['port']}",
        "command": [python, "-m", "gpu_scheduler"],
        "environment": env,
        "display": True,
        # its pages log in through the hub without asking the user to authorise it
        "oauth_no_confirm": True,
    }
    roles = [
        {
            "name": "gpu-scheduler",
            "description": "The GPU scheduler: read groups and activity, see and stop servers.",
            "scopes": list(SCHEDULER_SCOPES),
            "services": ["gpu-scheduler"],
        },
        {
            "name": "user",
            "description": "Every user: their own things, and the GPU scheduler's API.",
            "scopes": ["self", "access:services!service=gpu-scheduler"],
        },
    ]
    return [service], roles


def gpu_spawner_traits(cfg: dict, secret: str, host: str = "127.0.0.1") -> dict:
    """Where spawners ask for GPUs (nothing when the scheduler is off)."""
    gpus = cfg["gpus"]
    if not gpus["enabled"]:
        return {}
    # the hub's base path (from bind_url) comes before the services' prefix
    base = "/" + urlparse(cfg["hub"]["bind_url"]).path.strip("/")
    prefix = base.rstrip("/") + "/services/gpu-scheduler/"
    return {
        "gpu_scheduler_url": f"http://{host}:{gpus['port']}{prefix}",
        "gpu_public_prefix": prefix,
        "gpu_secret": secret,
        "gpu_max_wait": float(gpus["max_wait"]),
        # the wait in the queue is part of the start
        "start_timeout": gpus["max_wait"] + 300,
    }


def auth_traits(cfg: dict, data_dir: Path) -> dict[str, dict]:
    """The authenticator's sections: for the hub, and for ``dlhub admin``."""
    auth = cfg["auth"]
    return {
        "Authenticator": {
            "admin_users": set(auth["admin_users"]),
            # NativeAuthenticator only lets approved accounts log in; that is the allow list.
            "allow_all": True,
        },
        "DlhubAuthenticator": {
            "approve_known_users": auth["approve_known_users"],
            "login_throttle_failures": auth["throttle_failed_logins"],
            "login_throttle_seconds": auth["throttle_seconds"],
            "signup_throttle_attempts": auth["throttle_signups"],
            "max_pending_signups": auth["max_pending_signups"],
            "trusted_proxies": list(auth["trusted_proxies"]),
            "first_admin_token_file": str(data_dir / FIRST_ADMIN_TOKEN),
        },
        "NativeAuthenticator": {
            "open_signup": auth["open_signup"],
            "minimum_password_length": auth["minimum_password_length"],
            "check_common_password": True,
            "allowed_failed_logins": auth["allowed_failed_logins"],
            "seconds_before_next_try": auth["lockout_seconds"],
        },
    }


def traits_for(
    cfg: dict,
    data_dir: Path,
    *,
    python: str,
    environ: dict | None = None,
    hub_prefix: str = "",
    docker_gateway: str | None = None,
    gpu_secret: str = "",
    as_root: bool = False,
) -> dict[str, dict]:
    """Map a validated platform config to JupyterHub traits.

    ``as_root``: the hub runs as root (local backend: a system account per user, homes
    and shared folders outside the data dir).

    ``docker_gateway`` (docker backend) is the address of the user containers' network
    on this host: the hub listens there for its servers.
    """
    environ = {} if environ is None else environ
    hub = cfg["hub"]
    # the scheduler listens where user servers reach the hub
    gpu_host = docker_gateway if cfg["backend"] == "docker" and docker_gateway else "127.0.0.1"
    gpu_services, gpu_roles = gpu_scheduler_service(
        cfg, data_dir, python, environ.get("DLHUB_CONFIG"), gpu_secret, gpu_host
    )
    traits = {
        "JupyterHub": {
            "bind_url": hub["bind_url"],
            "hub_bind_url": f"http://127.0.0.1:{hub['hub_port']}",
            "db_url": db_url(cfg, data_dir),
            "cookie_secret_file": str(data_dir / "jupyterhub_cookie_secret"),
            "tornado_settings": {"cookie_options": cookie_options(hub["bind_url"])},
            "pid_file": str(data_dir / datadir.HUB_PID),
            "proxy_class": "hub_config.proxy.ConfigurableHTTPProxy",
            "log_level": hub["log_level"],
            "authenticator_class": "hub_config.auth.DlhubAuthenticator",
            "spawner_class": SPAWNER_CLASSES[cfg["backend"]],
            "services": culler_service(cfg["culling"], python) + gpu_services,
            "load_roles": culler_roles(cfg["culling"]) + gpu_roles,
            # page.html (the admins' pending sign-ups) and the account pages
            "template_paths": [str(TEMPLATES)],
        },
        "ConfigurableHTTPProxy": {
            "api_url": f"http://127.0.0.1:{hub['proxy_api_port']}",
            "pid_file": str(data_dir / datadir.PROXY_PID),
        },
        **auth_traits(cfg, data_dir),
        "Spawner": {
            "default_url": "/lab",
            "poll_interval": hub["poll_interval"],
        },
        "GpuMixin": gpu_spawner_traits(cfg, gpu_secret, gpu_host),
        "VolumesMixin": {"volumes_config": cfg["volumes"]},
    }
    if cfg["gpus"]["enabled"]:
        traits["Spawner"]["server_token_scopes"] = list(SERVER_TOKEN_SCOPES)
    profiles = [dict(p) for p in cfg["profiles"]]
    if cfg["backend"] == "local":
        users_dir, volumes_dir = local_dirs(cfg, data_dir, as_root)
        traits["LocalSpawner"] = {
            "profiles": profiles,
            "user_env_prefix": user_env(cfg, environ, hub_prefix),
            "users_dir": users_dir,
            "volumes_dir": volumes_dir,
            "account_prefix": cfg["local"].get("account_prefix", "dlhub-"),
        }
    elif cfg["backend"] == "docker":
        for section, values in docker_traits(cfg, docker_gateway, profiles).items():
            traits.setdefault(section, {}).update(values)
    elif cfg["backend"] == "kubernetes":
        from .kubernetes import kubernetes_traits

        for section, values in kubernetes_traits(cfg, environ, profiles).items():
            traits.setdefault(section, {}).update(values)
    return traits


def docker_traits(cfg: dict, gateway: str | None, profiles: list[dict]) -> dict[str, dict]:
    """The docker backend: containers on a dedicated network, a home volume per user."""
    if not gateway:
        raise ValueError("the docker backend needs the address of its network's gateway")
    docker = cfg["docker"]
    return {
        "JupyterHub": {
            # user containers reach the hub's API on their network's gateway
            "hub_bind_url": f"http://{gateway}:{cfg['hub']['hub_port']}",
            # containers outlive a hub restart; the hub finds them again
            "cleanup_servers": False,
        },
        "DockerSpawner": {
            "profiles": profiles,
            "default_image": docker["image"],
            "image": docker["image"],
            "network_name": docker["network"],
            "use_internal_ip": True,
            "remove": True,
            "prefix": docker["name_prefix"],
            "name_template": "{prefix}-{username}",
            "home_volumes": {
                HOME_VOLUME.format(prefix=docker["name_prefix"]): docker["home_mount"]
            },
            "notebook_dir": docker["home_mount"],
        },
    }


def apply(c, traits: dict[str, dict]) -> None:
    """Set every trait of ``traits`` on the traitlets config ``c``."""
    for section, values in traits.items():
        for name, value in values.items():
            setattr(c[section], name, value)
