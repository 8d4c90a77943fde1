"""The ``dlhub`` command: check the platform config, print its reference, run the hub.

python -m hub_config check [FILE]    validate a config, print the effective one
python -m hub_config up              validate, say where to log in, run the hub
python -m hub_config docs            print the config reference (Markdown)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources

import yaml

from . import mapping
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
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
