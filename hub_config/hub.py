"""Wiring: the platform config applied to a JupyterHub config object."""

from __future__ import annotations

import atexit
import gc
import os
import sys

from . import datadir, managed_services, mapping, tls
from .config import BUILTIN, ConfigError, load_platform_config

#: JupyterHub's variable for the key that encrypts users' auth state.
CRYPT_KEY_ENV = "JUPYTERHUB_CRYPT_KEY"
#: The data dir's file with that key when the variable is not set (mode 0600).
CRYPT_KEY_FILE = "jupyterhub-crypt-key"


def configure(c, environ=None, cwd=None) -> dict:
    """Load the platform config and apply it to ``c``; return the validated config.

    An invalid config ends the process with the one-line message and exit code 1.
    """
    environ = os.environ if environ is None else environ
    cwd = os.getcwd() if cwd is None else cwd
    source = environ.get("DLHUB_CONFIG") or None
    try:
        cfg = load_platform_config(source)
    except ConfigError as e:
        sys.exit(str(e))
    problem = tls.environment_problem(environ)
    if problem:
        sys.exit(f"dlhub: {problem}")
    cfg = tls.with_environment(cfg, environ)
    data_dir = mapping.resolve_data_dir(cfg, cwd)
    gateway = None
    if cfg["backend"] == "docker":
        from .docker_network import DockerUnavailable, bridge_name, ensure_network
        from .host_firewall import close_host

        try:
            gateway = ensure_network(cfg["docker"]["network"])
        except DockerUnavailable as e:
            sys.exit(f"dlhub: {e}")
        # on the host, user containers reach only the hub's API and the GPU scheduler
        ports = [cfg["hub"]["hub_port"]] + (
            [cfg["gpus"]["port"]] if cfg["gpus"]["enabled"] else []
        )
        network = cfg["docker"]["network"]
        warning = close_host(network, bridge_name(network), gateway, ports)
        if warning:
            print(warning, file=sys.stderr)
        from .docker_gpu import engine_runtimes, startup_warning

        warning = startup_warning(cfg, engine_runtimes())
        if warning:
            print(warning, file=sys.stderr)
    datadir.prepare(data_dir, mapping.db_url(cfg, data_dir))
    try:
        made = tls.prepare(cfg, data_dir)
    except tls.TlsError as e:
        sys.exit(str(ConfigError(source or BUILTIN, e.key, e.problem)))
    if made:
        print(made, file=sys.stderr)
    gpu_secret = datadir.secret(data_dir, "gpu-scheduler-secret") if cfg["gpus"]["enabled"] else ""
    as_root = os.geteuid() == 0
    try:
        traits = mapping.traits_for(
            cfg,
            data_dir,
            python=sys.executable,
            environ=dict(environ),
            hub_prefix=sys.prefix,
            docker_gateway=gateway,
            gpu_secret=gpu_secret,
            as_root=as_root,
        )
    except ValueError as e:  # e.g. the kubernetes backend without the chart's environment
        sys.exit(str(e))
    if cfg["backend"] == "local" and as_root:
        from .unix_accounts import prepare_local_dirs

        local = traits["LocalSpawner"]
        problem = prepare_local_dirs(
            local["users_dir"], local["volumes_dir"], local["user_env_prefix"]
        )
        if problem:
            sys.exit(f"dlhub: {problem}")
    # managed services run supervised, die with the hub, and a dead hub's are ended with
    # their tokens before this one starts its own (hub_config.managed_services)
    hub = traits["JupyterHub"]
    hub["services"] = managed_services.supervised(hub["services"], data_dir, sys.executable)
    managed_services.at_hub_start(data_dir, hub["db_url"], hub["services"])
    # the interpreter's last garbage collections took 1.5-3 s of a Ctrl-C on the hub's
    # heap; what is still alive at exit is left to the process's end instead
    atexit.register(gc.freeze)
    mapping.apply(c, traits)
    # a callable too: with a database server, every request ends its database transaction,
    # so no connection is held between requests (a restart of that server costs no
    # request; hub_config.db_session)
    from .db_session import log_and_release, wanted

    if wanted(mapping.db_url(cfg, data_dir)):
        c.JupyterHub.tornado_settings["log_function"] = log_and_release
    # "Open in dlhub" links, whichever authenticator logs people in (JupyterHub 6 still
    # serves extra_handlers under /hub/, and logs that it deprecates them)
    from . import open_links

    c.JupyterHub.extra_handlers = list(open_links.ROUTES)
    problem = configure_auth(c, cfg, traits, data_dir, environ)
    if problem:
        sys.exit(f"invalid dlhub config: {problem}")
    return cfg


def configure_auth(c, cfg: dict, traits: dict, data_dir, environ) -> str | None:
    """What the authenticator of ``auth.type`` needs beyond its traits; a problem that
    stops start-up (one line naming the key), or None."""
    if cfg["auth"]["type"] == "native":
        # callables, which the mapping (plain data) cannot hold: the admins' pending sign-ups
        from . import approval

        c.JupyterHub.template_vars = {"dlhub_pending_signups": approval.pending_signups}
        c.JupyterHub.default_url = approval.landing_url
    if cfg["auth"]["type"] == "oidc":
        from . import oidc

        problem = oidc.startup_problem(cfg["auth"])
        if problem:
            return problem
    if cfg["auth"]["type"] == "ldap":
        from . import ldap

        problem = ldap.startup_problem(cfg["auth"])
        if problem:
            return problem
    if cfg["auth"]["type"] != "native":
        # their refresh before each start may say "log in again"; JupyterHub 6.1 must not
        # answer that with a 500
        from .auth_refresh import default_token_authenticated

        default_token_authenticated()
    auth_state = any(v.get("enable_auth_state") for v in traits.values())
    if auth_state and not environ.get(CRYPT_KEY_ENV):
        # the provider's tokens are kept encrypted in the hub database, under a key kept
        # in the data dir (or given in $JUPYTERHUB_CRYPT_KEY)
        c.CryptKeeper.keys = [datadir.secret(data_dir, CRYPT_KEY_FILE)]
    return None
