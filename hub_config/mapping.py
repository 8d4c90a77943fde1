"""The platform config mapped onto JupyterHub traits, by explicit tables: the one place
where a platform key becomes a trait.

:func:`traits_for` is pure: given a validated platform config (see
:mod:`hub_config.config`) and where things live, it returns the whole
``{"Section": {"trait": value}}``. One table per backend (:func:`local_traits`,
:func:`docker_traits`, :func:`kubernetes_traits`) decides what differs between them (where
the hub's API listens, the proxy, the GPU scheduler, the start's timeout, the spawner's
section) and fills the sections every backend has (:func:`hub_traits`) with it; no value is
set twice (:func:`merged` refuses). :func:`apply` copies the result onto a traitlets
``Config`` such as the ``c`` of ``jupyterhub_config.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from gpu_scheduler.contract import SECRET_ENV

from . import datadir, k8s_objects, ldap, oidc, tls
from .first_admin import TOKEN_FILE as FIRST_ADMIN_TOKEN
from .k8s_env import chart_env

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


#: Seconds between the hub's checks of each server when ``hub.poll_interval`` is null: short
#: where servers die out of the hub's sight and a check is cheap (docker: one engine call
#: per server; kubernetes: a read of KubeSpawner's pod cache); JupyterHub's 30 on local.
POLL_INTERVAL = {"local": 30, "docker": 5, "kubernetes": 5}


def poll_interval(cfg: dict) -> int:
    """``hub.poll_interval``, or the backend's :data:`POLL_INTERVAL` when it is null."""
    return cfg["hub"]["poll_interval"] or POLL_INTERVAL[cfg["backend"]]


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


def named_servers(servers: dict) -> dict:
    """``servers.per_user``: named servers besides the default one (0: none)."""
    per_user = servers["per_user"]
    return {"allow_named_servers": per_user > 0, "named_server_limit_per_user": per_user}


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


class GpuScheduler(NamedTuple):
    """Where a backend's hub and spawners find the GPU scheduler, decided once per backend
    (:func:`managed_scheduler` on local and docker, the chart's on kubernetes)."""

    #: the JupyterHub service (``JupyterHub.services``)
    service: dict
    #: where the spawners call its API (``GpuMixin.gpu_scheduler_url``)
    url: str
    #: the secret the hub's spawns present to it (``GpuMixin.gpu_secret``)
    secret: str


def public_prefix(bind_url: str) -> str:
    """The scheduler's path: the hub's base path (from ``hub.bind_url``), then the
    services' prefix."""
    base = "/" + urlparse(bind_url).path.strip("/")
    return base.rstrip("/") + "/services/gpu-scheduler/"


def managed_scheduler(
    cfg: dict,
    data_dir: Path,
    python: str,
    config_file: str | None,
    secret: str,
    host: str = "127.0.0.1",
) -> GpuScheduler:
    """The GPU scheduler as a hub-managed service (the local and docker backends).

    ``host``: where it listens; on the docker backend the user network's gateway, so that
    user containers reach it as they reach the hub."""
    gpus = cfg["gpus"]
    db = gpus["db_url"] or f"sqlite:///{data_dir / 'gpu-scheduler.sqlite'}"
    env = {"DLHUB_GPU_DB_URL": db, SECRET_ENV: secret}
    if config_file:
        env["DLHUB_CONFIG"] = config_file
    url = f"http://{host}:{gpus['port']}"
    service = {
        "name": "gpu-scheduler",
        "url": url,
        "command": [python, "-m", "gpu_scheduler"],
        "environment": env,
        "display": True,
        # its pages log in through the hub without asking the user to authorise it
        "oauth_no_confirm": True,
    }
    return GpuScheduler(service, url + public_prefix(cfg["hub"]["bind_url"]), secret)


def gpu_roles() -> list[dict]:
    """The GPU scheduler's role, and every user's access to its API."""
    return [
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


def gpu_start_timeout(cfg: dict) -> int:
    """A start's timeout on the local and docker backends with GPU scheduling: the wait
    in the GPU queue is part of the start."""
    return cfg["gpus"]["max_wait"] + 300


def native_auth_traits(cfg: dict, data_dir: Path) -> dict[str, dict]:
    """``auth.type: native``: sign-up with approval (``hub_config.auth.DlhubAuthenticator``)."""
    auth = cfg["auth"]
    return {
        "JupyterHub": {"authenticator_class": "hub_config.auth.DlhubAuthenticator"},
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
            "password_hash_threads": auth["password_hash_threads"],
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


def oidc_auth_traits(cfg: dict, data_dir: Path) -> dict[str, dict]:
    """``auth.type: oidc``: an OpenID Connect provider (:mod:`hub_config.oidc`)."""
    return oidc.oidc_traits(cfg["auth"])


def ldap_auth_traits(cfg: dict, data_dir: Path) -> dict[str, dict]:
    """``auth.type: ldap``: an LDAP directory (:mod:`hub_config.ldap`)."""
    return ldap.ldap_traits(cfg["auth"])


#: ``auth.type`` -> its authenticator's sections (``JupyterHub.authenticator_class`` among them).
AUTH_TABLES = {
    "native": native_auth_traits,
    "oidc": oidc_auth_traits,
    "ldap": ldap_auth_traits,
}


def auth_traits(cfg: dict, data_dir: Path) -> dict[str, dict]:
    """The authenticator's sections for ``auth.type``: for the hub, and for ``dlhub admin``."""
    kind = cfg["auth"]["type"]
    if kind not in AUTH_TABLES:
        raise ValueError(f"dlhub: auth.type {kind!r} is not available in this version of dlhub")
    return AUTH_TABLES[kind](cfg, data_dir)


def merged(*tables: dict[str, dict]) -> dict[str, dict]:
    """The sections of ``tables`` together; a trait set by two of them is an error, so
    each value is decided in one place."""
    out: dict[str, dict] = {}
    for table in tables:
        for section, values in table.items():
            into = out.setdefault(section, {})
            twice = set(into) & set(values)
            if twice:
                raise RuntimeError(f"{section}: {', '.join(sorted(twice))} decided twice")
            into.update(values)
    return out


def hub_traits(
    cfg: dict,
    data_dir: Path,
    *,
    python: str,
    hub_bind_url: str,
    proxy_api_url: str,
    scheduler: GpuScheduler | None,
) -> dict[str, dict]:
    """The sections every backend has, with what its table decided: where the hub's API
    listens, the proxy's API, and the GPU scheduler (None: GPU scheduling is off)."""
    hub = cfg["hub"]
    traits = {
        "JupyterHub": {
            "bind_url": hub["bind_url"],
            "hub_bind_url": hub_bind_url,
            "db_url": db_url(cfg, data_dir),
            "db_kwargs": datadir.db_kwargs(db_url(cfg, data_dir)),
            "concurrent_spawn_limit": hub["concurrent_spawn_limit"],
            "active_server_limit": hub["active_server_limit"],
            "cookie_secret_file": str(data_dir / "jupyterhub_cookie_secret"),
            "tornado_settings": {
                "cookie_options": cookie_options(hub["bind_url"]),
                "headers": tls.headers(cfg),
            },
            "pid_file": str(data_dir / datadir.HUB_PID),
            "proxy_class": "hub_config.proxy.ConfigurableHTTPProxy",
            "log_level": hub["log_level"],
            "spawner_class": SPAWNER_CLASSES[cfg["backend"]],
            "services": culler_service(cfg["culling"], python)
            + ([scheduler.service] if scheduler else []),
            "load_roles": culler_roles(cfg["culling"]) + (gpu_roles() if scheduler else []),
            **named_servers(cfg["servers"]),
            # page.html (the admins' pending sign-ups) and the account pages
            "template_paths": [str(TEMPLATES)],
        },
        "ConfigurableHTTPProxy": {
            "api_url": proxy_api_url,
            "pid_file": str(data_dir / datadir.PROXY_PID),
            **tls_proxy_traits(cfg),
        },
        "Spawner": {
            "default_url": "/lab",
            "poll_interval": poll_interval(cfg),
        },
        # where spawners ask for GPUs (nothing when the scheduler is off)
        "GpuMixin": {},
        "VolumesMixin": {"volumes_config": cfg["volumes"]},
    }
    certificate = tls.files(cfg, data_dir)
    if certificate:
        # the proxy serves https with them (its --ssl-cert, --ssl-key)
        traits["JupyterHub"]["ssl_cert"], traits["JupyterHub"]["ssl_key"] = certificate
    if scheduler:
        traits["Spawner"]["server_token_scopes"] = list(SERVER_TOKEN_SCOPES)
        traits["GpuMixin"] = {
            "gpu_scheduler_url": scheduler.url,
            "gpu_public_prefix": public_prefix(hub["bind_url"]),
            "gpu_secret": scheduler.secret,
            "gpu_max_wait": float(cfg["gpus"]["max_wait"]),
        }
    return merged(traits, auth_traits(cfg, data_dir))


def tls_proxy_traits(cfg: dict) -> dict:
    """The proxy's command with the plain-http redirect listener of ``hub.tls``, if any."""
    command = tls.proxy_command(cfg)
    return {"command": command} if command else {}


def local_proxy_api_url(cfg: dict) -> str:
    """The API of the proxy the hub starts itself."""
    return f"http://127.0.0.1:{cfg['hub']['proxy_api_port']}"


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
    """Map a validated platform config to JupyterHub traits: the whole result, from the
    table of ``cfg["backend"]`` (:func:`local_traits`, :func:`docker_traits`,
    :func:`kubernetes_traits`).

    ``environ``: the hub's environment (``DLHUB_CONFIG``, ``DLHUB_USER_ENV``; on
    kubernetes the chart's, :mod:`hub_config.k8s_env`). ``gpu_secret``: the secret of the
    hub-managed GPU scheduler (local, docker; on kubernetes the chart sets it).
    ``as_root`` (local): the hub runs as root (a system account per user, homes and shared
    folders outside the data dir). ``docker_gateway`` (docker): the address of the user
    containers' network on this host; the hub listens there for its servers.

    Raises ``ValueError`` with a one-line message when the environment lacks what the
    backend needs.
    """
    environ = {} if environ is None else environ
    backend = cfg["backend"]
    if backend == "local":
        return local_traits(
            cfg,
            data_dir,
            python=python,
            environ=environ,
            hub_prefix=hub_prefix,
            gpu_secret=gpu_secret,
            as_root=as_root,
        )
    if backend == "docker":
        return docker_traits(
            cfg,
            data_dir,
            python=python,
            environ=environ,
            gateway=docker_gateway,
            gpu_secret=gpu_secret,
        )
    if backend == "kubernetes":
        return kubernetes_traits(cfg, data_dir, python=python, environ=environ)
    raise ValueError(f"dlhub: unknown backend {backend!r}")


# --- local: a process per user on this host -------------------------------------------------


def local_traits(
    cfg: dict,
    data_dir: Path,
    *,
    python: str,
    environ: dict,
    hub_prefix: str,
    gpu_secret: str,
    as_root: bool,
) -> dict[str, dict]:
    """The local backend: every server a process, under a system account when the hub
    runs as root."""
    hub = cfg["hub"]
    scheduler = None
    if cfg["gpus"]["enabled"]:
        config_file = environ.get("DLHUB_CONFIG")
        scheduler = managed_scheduler(cfg, data_dir, python, config_file, gpu_secret)
    users_dir, volumes_dir = local_dirs(cfg, data_dir, as_root)
    spawner = {
        "profiles": [dict(p) for p in cfg["profiles"]],
        "user_env_prefix": user_env(cfg, environ, hub_prefix),
        "users_dir": users_dir,
        "volumes_dir": volumes_dir,
        "account_prefix": cfg["local"].get("account_prefix", "dlhub-"),
    }
    if scheduler:
        spawner["start_timeout"] = gpu_start_timeout(cfg)
    return merged(
        hub_traits(
            cfg,
            data_dir,
            python=python,
            hub_bind_url=f"http://127.0.0.1:{hub['hub_port']}",
            proxy_api_url=local_proxy_api_url(cfg),
            scheduler=scheduler,
        ),
        {"LocalSpawner": spawner},
    )


# --- docker: a container per user on a dedicated network ------------------------------------


def docker_traits(
    cfg: dict,
    data_dir: Path,
    *,
    python: str,
    environ: dict,
    gateway: str | None,
    gpu_secret: str,
) -> dict[str, dict]:
    """The docker backend: containers on a dedicated network, a home volume per user; the
    hub's API and the GPU scheduler listen on the network's gateway."""
    if not gateway:
        raise ValueError("the docker backend needs the address of its network's gateway")
    hub, docker = cfg["hub"], cfg["docker"]
    scheduler = None
    if cfg["gpus"]["enabled"]:
        config_file = environ.get("DLHUB_CONFIG")
        scheduler = managed_scheduler(cfg, data_dir, python, config_file, gpu_secret, gateway)
    spawner = {
        "profiles": [dict(p) for p in cfg["profiles"]],
        "default_image": docker["image"],
        "image": docker["image"],
        "network_name": docker["network"],
        "use_internal_ip": True,
        "remove": True,
        "prefix": docker["name_prefix"],
        "home_volumes": {HOME_VOLUME.format(prefix=docker["name_prefix"]): docker["home_mount"]},
        "notebook_dir": docker["home_mount"],
    }
    if scheduler:
        spawner["start_timeout"] = gpu_start_timeout(cfg)
    return merged(
        hub_traits(
            cfg,
            data_dir,
            python=python,
            # user containers reach the hub's API on their network's gateway
            hub_bind_url=f"http://{gateway}:{hub['hub_port']}",
            proxy_api_url=local_proxy_api_url(cfg),
            scheduler=scheduler,
        ),
        # containers outlive a hub restart; the hub finds them again
        {"JupyterHub": {"cleanup_servers": False}, "DockerSpawner": spawner},
    )


# --- kubernetes: a pod per user, the hub deployed by the Helm chart ------------------------

#: Seconds a pod may take to be scheduled and pull its image (a user image is several GB).
POD_START_TIMEOUT = 600

#: Seconds the hub waits for a running pod's server to answer (TensorFlow images import a
#: lot before JupyterLab listens).
HTTP_TIMEOUT = 120


def kubernetes_traits(cfg: dict, data_dir: Path, *, python: str, environ: dict) -> dict[str, dict]:
    """The kubernetes backend: pods made by :class:`hub_config.kubernetes.KubernetesSpawner`,
    the hub, its proxy and the GPU scheduler where the chart's environment says
    (:func:`hub_config.k8s_env.chart_env`).

    Raises :class:`hub_config.k8s_env.KubernetesEnvError` (a ``ValueError``) naming a
    missing variable.
    """
    k8s, hub, gpus = cfg["kubernetes"], cfg["hub"], cfg["gpus"]
    env = chart_env(environ, gpus["enabled"])
    scheduler = None
    start_timeout = POD_START_TIMEOUT
    if gpus["enabled"]:
        # the chart runs the scheduler as its own Deployment: an external service
        service = {
            "name": "gpu-scheduler",
            "url": env.scheduler_url,
            "api_token": env.scheduler_token,
            "display": True,
            "oauth_no_confirm": True,
        }
        url = env.scheduler_url.rstrip("/") + public_prefix(hub["bind_url"])
        scheduler = GpuScheduler(service, url, env.gpu_secret)
        # the wait in the GPU queue is part of the start
        start_timeout += gpus["max_wait"]
    # the chart's proxy Deployment (its token is CONFIGPROXY_AUTH_TOKEN), or the hub's own
    proxy = {"should_start": False} if env.proxy_api_url else {}
    home_volumes, home_mounts = k8s_objects.home_volume()
    spawner = {
        "profiles": [dict(p) for p in cfg["profiles"]],
        "default_image": k8s["image"],
        "image": k8s["image"],
        "image_pull_policy": k8s["image_pull_policy"],
        "node_selector": dict(k8s["node_selector"]),
        "gpu_product_label": k8s["gpu_product_label"],
        "release_fullname": env.fullname,
        # the image's entrypoint (tini) runs this: starter notebooks, then the server
        "cmd": ["dlhub-start", "jupyterhub-singleuser"],
        "start_timeout": start_timeout,
        "http_timeout": HTTP_TIMEOUT,
        # the image's user; never root, no way to become root
        "uid": k8s_objects.UID,
        "gid": k8s_objects.GID,
        "fs_gid": k8s_objects.GID,
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
        "extra_labels": {"app.kubernetes.io/instance": env.release},
        # the home: one claim per user (all their servers mount it), made at its first
        # start, kept across starts
        "pod_name_template": k8s_objects.POD_NAME_TEMPLATE,
        "pvc_name_template": k8s_objects.PVC_NAME_TEMPLATE,
        "storage_pvc_ensure": True,
        "storage_capacity": k8s["home_size"],
        "storage_class": k8s["storage_class"] or None,
        "storage_access_modes": ["ReadWriteOnce"],
        "volumes": home_volumes,
        "volume_mounts": home_mounts,
        # a pod on a GPU node sees no GPU unless it was leased some (see assign_gpus)
        "environment": {"NVIDIA_VISIBLE_DEVICES": "void"},
    }
    if env.namespace:
        spawner["namespace"] = env.namespace
    return merged(
        hub_traits(
            cfg,
            data_dir,
            python=python,
            # user pods reach the hub on its pod's address (through the hub's Service)
            hub_bind_url=f"http://0.0.0.0:{hub['hub_port']}",
            proxy_api_url=env.proxy_api_url or local_proxy_api_url(cfg),
            scheduler=scheduler,
        ),
        {
            "JupyterHub": {
                "hub_connect_url": env.hub_connect_url,
                # user pods outlive a hub restart; the hub finds them again
                "cleanup_servers": False,
            },
            "ConfigurableHTTPProxy": proxy,
            "KubernetesSpawner": spawner,
        },
    )


def apply(c, traits: dict[str, dict]) -> None:
    """Set every trait of ``traits`` on the traitlets config ``c``."""
    for section, values in traits.items():
        for name, value in values.items():
            setattr(c[section], name, value)
