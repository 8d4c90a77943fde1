"""The ``dlhub`` command: check the platform config, run the hub, manage its users.

python -m hub_config check [FILE]    validate a config, print the effective one
python -m hub_config up              validate, say where to log in, run the hub
python -m hub_config docs            print the config reference (Markdown)
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

from . import mapping, roster
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


def banner(cfg: dict, data_dir) -> str:
    url = cfg["hub"]["bind_url"].rstrip("/")
    if cfg["backend"] == "kubernetes":
        # in the chart's pod: users come in through the proxy's Service or the Ingress
        url = "<the proxy-public Service or Ingress address (`helm status` shows it)>"
    admins = ", ".join(cfg["auth"]["admin_users"]) or "(none: set auth.admin_users)"
    first = cfg["auth"]["admin_users"][0] if cfg["auth"]["admin_users"] else "admin"
    return "\n".join(
        [
            "",
            f"  dlhub is starting on the {cfg['backend']} backend.",
            f"  Open {url}/hub/ in your browser.",
            f"  First admin: sign up at {url}/hub/signup as '{first}' (admins: {admins}),",
            "  choose a password, then log in. Admins approve new accounts at "
            f"{url}/hub/authorize.",
            f"  State is kept in {data_dir}. Press Ctrl-C to stop the hub and its servers.",
            "",
        ]
    )


def cmd_up(args) -> int:
    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    cfg = _load(os.environ.get(CONFIG_ENV) or None)
    data_dir = mapping.resolve_data_dir(cfg, os.getcwd())
    print(banner(cfg, data_dir), flush=True)
    config_py = resources.files("hub_config").joinpath("jupyterhub_config.py")
    jupyterhub = os.path.join(os.path.dirname(sys.executable), "jupyterhub")
    os.execv(jupyterhub, [jupyterhub, "-f", str(config_py)])


def cmd_docs(args) -> int:
    sys.stdout.write(render_reference())
    return 0


def _hub(args) -> str:
    return args.hub or _load(args.config)["hub"]["bind_url"]


def cmd_roster_import(args) -> int:
    return roster.run_import(args.file, _hub(args), dry_run=args.dry_run)


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
    p.set_defaults(func=cmd_up)
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
