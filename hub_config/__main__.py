"""The ``dlhub`` command: check the platform config, run the hub, manage its users.

python -m hub_config check [FILE]    validate a config, print the effective one
python -m hub_config up              validate, say where to log in, run the hub
python -m hub_config docs            print the config reference (Markdown)
python -m hub_config admin NAME      make an admin's account (or set its password)
python -m hub_config roster import FILE   make the hub's users match a CSV roster
python -m hub_config roster export        write all users as a roster
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources

import yaml

from . import datadir, first_admin, mapping, roster, single_hub, tls
from .config import CONFIG_ENV, ConfigError, load_platform_config
from .reference import render_reference


def _load(path):
    try:
        return load_platform_config(path)
    except ConfigError as e:
        print(f"dlhub: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check(args) -> int:
    cfg = _load(args.config)
    if args.get:
        value = cfg
        for part in args.get.split("."):
            value = value[part]
        print(value if isinstance(value, str) else json.dumps(value))
        return 0
    yaml.safe_dump(cfg, sys.stdout, sort_keys=False)
    return 0


def public_url(cfg: dict) -> str:
    """Where users open the hub, as far as this process knows."""
    if cfg["backend"] == "kubernetes":
        # in the chart's pod: users come in through the proxy's Service or the Ingress
        return "<the proxy-public Service or Ingress address (`helm status` shows it)>"
    return cfg["hub"]["bind_url"].rstrip("/")


def banner(cfg: dict, data_dir, setup_link: str | None = None) -> str:
    """What ``dlhub up`` prints; ``setup_link``: the first admin's one-time link."""
    url = public_url(cfg)
    admins = ", ".join(cfg["auth"]["admin_users"]) or "(none: set auth.admin_users)"
    open_line = f"  Open {url}/hub/ in your browser."
    if cfg["backend"] != "kubernetes" and cfg["hub"]["tls"]["self_signed"]:
        cert = tls.files(cfg, data_dir)[0]
        open_line = (
            f"  Open {url}/hub/ in your browser: HTTPS with a self-signed certificate "
            f"({cert}),\n  which the browser warns about; accept it once to try dlhub out."
        )
    if cfg["auth"]["type"] != "native":
        first = [
            f"  People log in with {roster.DIRECTORY_TYPES[cfg['auth']['type']]} accounts "
            f"(auth.type: {cfg['auth']['type']}); its groups are the hub's groups."
        ]
    elif setup_link:
        first = [
            f"  First admin: open {setup_link}",
            f"  (one use, for an admin without an account: {admins}), choose a password, "
            "then log in.",
        ]
    else:
        first = [f"  Admins ({admins}) log in at {url}/hub/login."]
    return "\n".join(
        [
            "",
            f"  dlhub is starting on the {cfg['backend']} backend.",
            open_line,
            *first,
            *(
                [f"  Admins approve new accounts at {url}/hub/authorize."]
                if cfg["auth"]["type"] == "native"
                else []
            ),
            f"  State is kept in {data_dir}.",
            stop_line(cfg["backend"]),
            "",
        ]
    )


def stop_line(backend: str) -> str:
    """What Ctrl-C stops: everything on the local backend; the docker backend's user
    containers keep running by design (the next start finds them again)."""
    if backend == "docker":
        return (
            "  Ctrl-C stops the hub, its proxy and services; users' containers keep running "
            "(by design) and the next start finds them again."
        )
    return "  Ctrl-C stops the hub, its proxy, its services and users' servers."


def first_admin_link(cfg: dict, data_dir) -> str | None:
    """A new one-time setup link while an admin name has no account; None otherwise."""
    db = mapping.db_url(cfg, data_dir)
    path = first_admin.token_path(data_dir)
    try:
        unclaimed = first_admin.unclaimed_admins(db, cfg["auth"]["admin_users"])
    except Exception as e:  # the database cannot be read: the link does no harm
        print(f"dlhub: could not read the hub database ({e}); printing a setup link")
        unclaimed = cfg["auth"]["admin_users"]
    if not unclaimed:
        path.unlink(missing_ok=True)
        return None
    datadir.prepare(data_dir, db)
    return first_admin.setup_link(public_url(cfg), first_admin.issue(path))


def cmd_up(args) -> int:
    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    if args.tls:
        os.environ[tls.TLS_ENV] = args.tls
    cfg = _load(os.environ.get(CONFIG_ENV) or None)
    problem = tls.environment_problem(os.environ)
    if problem:
        print(f"dlhub: {problem}", file=sys.stderr)
        return 2
    cfg = tls.with_environment(cfg, os.environ)
    data_dir = mapping.resolve_data_dir(cfg, os.getcwd())
    single_hub.hold_for_exec(cfg, data_dir)  # before the setup link reads the database
    native = cfg["auth"]["type"] == "native"
    print(banner(cfg, data_dir, first_admin_link(cfg, data_dir) if native else None), flush=True)
    if cfg["backend"] == "local":
        print("\n".join(local_mode(cfg)) + "\n", flush=True)
    config_py = resources.files("hub_config").joinpath("jupyterhub_config.py")
    jupyterhub = os.path.join(os.path.dirname(sys.executable), "jupyterhub")
    os.execv(jupyterhub, [jupyterhub, "-f", str(config_py)])


def local_mode(cfg: dict) -> list[str]:
    """The local backend: whose account servers run as, and whether limits hold."""
    import getpass

    from . import accounts, cgroups

    support = cgroups.detect()
    return accounts.local_mode_lines(
        cfg["local"]["account_prefix"],
        os.geteuid() == 0,
        getpass.getuser(),
        support.version,
        support.reason,
    )


def read_password(stdin=None) -> str:
    """The new password: typed twice at a terminal, or the first line of stdin."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    import getpass

    password = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != password:
        raise ValueError("the two passwords differ")
    return password


def cmd_admin(args) -> int:
    """Make the account of an admin named in auth.admin_users, on the command line."""
    from .admin_password import set_admin_password

    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    cfg = _load(os.environ.get(CONFIG_ENV) or None)
    name = args.name.lower()
    if cfg["auth"]["type"] != "native":
        print(
            f"dlhub: auth.type is {cfg['auth']['type']}: admins log in with the directory's "
            "password; name them in auth.admin_users or the directory's admin group.",
            file=sys.stderr,
        )
        return 2
    admins = cfg["auth"]["admin_users"]
    if name not in admins:
        listed = ", ".join(admins) or "none"
        print(
            f"dlhub: '{name}' is not in auth.admin_users ({listed}): add it there first.",
            file=sys.stderr,
        )
        return 2
    data_dir = mapping.resolve_data_dir(cfg, os.getcwd())
    db = mapping.db_url(cfg, data_dir)
    datadir.prepare(data_dir, db)
    try:
        password = read_password()
        made = set_admin_password(mapping.auth_traits(cfg, data_dir), db, name, password)
    except ValueError as e:
        print(f"dlhub: {e}.", file=sys.stderr)
        return 1
    if not first_admin.unclaimed_admins(db, admins):
        first_admin.token_path(data_dir).unlink(missing_ok=True)  # no setup link needed
    url = public_url(cfg)
    if made:
        print(f"dlhub: the admin account '{name}' is made: log in at {url}/hub/login.")
    else:
        print(f"dlhub: the password of '{name}' is set (a running hub uses it after a restart).")
    return 0


def cmd_docs(args) -> int:
    sys.stdout.write(render_reference())
    return 0


def _hub(args) -> str:
    return args.hub or _load(args.config)["hub"]["bind_url"]


def cmd_roster_import(args) -> int:
    cfg = _load(args.config)
    hub = args.hub or cfg["hub"]["bind_url"]
    return roster.run_import(args.file, hub, dry_run=args.dry_run, auth_type=cfg["auth"]["type"])


def cmd_roster_export(args) -> int:
    return roster.run_export(_hub(args), args.output)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dlhub", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate a platform config and print it with defaults")
    p.add_argument("config", nargs="?", help=f"YAML file (default: ${CONFIG_ENV} or built-in)")
    p.add_argument("--get", metavar="KEY", help="print one value, e.g. --get backend")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("up", help="run the hub in the foreground")
    p.add_argument("--config", help=f"YAML file (default: ${CONFIG_ENV} or built-in)")
    p.add_argument(
        "--tls",
        choices=["self-signed"],
        help="serve https with a self-signed certificate made in the data dir (hub.tls)",
    )
    p.set_defaults(func=cmd_up)
    p = sub.add_parser(
        "admin",
        help="make an admin's account (or set its password), password from the terminal",
        description="NAME must be in auth.admin_users. The password is typed twice at a "
        "terminal, or read from the first line of stdin. Run it where `dlhub up` runs "
        "(the same config and directory).",
    )
    p.add_argument("name", metavar="NAME", help="one of auth.admin_users")
    p.add_argument("--config", help=f"YAML file (default: ${CONFIG_ENV} or built-in)")
    p.set_defaults(func=cmd_admin)
    p = sub.add_parser("docs", help="print the config reference as Markdown")
    p.set_defaults(func=cmd_docs)
    p = sub.add_parser(
        "roster",
        help="create users, admins and groups from a CSV roster, or export one",
        description=f"The admin's API token is read from ${roster.TOKEN_ENVS[0]} "
        f"(or ${roster.TOKEN_ENVS[1]}); make one at <hub>/hub/token.",
    )
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("import", help="make the hub's users match a roster")
    a.add_argument("file", help="CSV file: username,groups,admin ('-' for stdin)")
    a.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    a.set_defaults(func=cmd_roster_import)
    e = actions.add_parser("export", help="write all users as a roster")
    e.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    e.set_defaults(func=cmd_roster_export)
    for q in (a, e):
        q.add_argument("--hub", metavar="URL", help="hub address (default: hub.bind_url)")
        q.add_argument("--config", help=f"YAML file (default: ${CONFIG_ENV} or built-in)")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
