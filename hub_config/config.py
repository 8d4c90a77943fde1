"""Loading and validating the platform config.

The platform config is one YAML document checked against ``schema.yaml``. Everything
here is pure apart from reading the file: :func:`load_platform_config` returns a plain
dict with every default filled in, or raises :class:`ConfigError` whose message names
the file, the key path and what is allowed.
"""

from __future__ import annotations

import copy
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

#: Environment variable naming the platform config file.
CONFIG_ENV = "DLHUB_CONFIG"

#: Backends that this version can run. The schema names the others so that a
#: config written for them gets a clear "not yet" instead of "unknown value".
AVAILABLE_BACKENDS = ("local", "docker", "kubernetes")

BUILTIN = "<built-in defaults>"


class ConfigError(ValueError):
    """The platform config is invalid; ``str(err)`` is the one-line message to show."""

    def __init__(self, source: str, key: str, problem: str):
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"invalid dlhub config {where}: {problem}")


@cache
def schema() -> dict:
    """The platform config schema, as a dict."""
    text = resources.files("hub_config").joinpath("schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def key_path(path) -> str:
    """Render a jsonschema path (``deque(['profiles', 0, 'name'])``) as ``profiles[0].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(items) -> str:
    return ", ".join(str(i) for i in items)


def _describe(value) -> str:
    if isinstance(value, str):
        return repr(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def _problem(error) -> tuple[str, str]:
    """Turn one jsonschema error into (key path, what is wrong and what is allowed)."""
    key = key_path(error.absolute_path)
    sub = error.schema if isinstance(error.schema, dict) else {}
    got = _describe(error.instance)
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(sub.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in sub.get("properties", {}))
        name = extra[0] if extra else "?"
        full = f"{key}.{name}" if key else str(name)
        return full, f"unknown key; allowed keys here: {_join(allowed)}"
    if v == "type":
        types = error.validator_value
        types = [types] if isinstance(types, str) else types
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        return key, f"expected {wanted}, got {got}"
    if v == "enum":
        return key, f"must be one of {_join(error.validator_value)}, got {got}"
    if v == "minimum":
        return key, f"must be at least {error.validator_value}, got {got}"
    if v == "maximum":
        return key, f"must be at most {error.validator_value}, got {got}"
    if v == "exclusiveMinimum":
        return key, f"must be greater than {error.validator_value}, got {got}"
    if v == "pattern":
        allowed = sub.get("x-allowed", f"a string matching {error.validator_value}")
        return key, f"must be {allowed}, got {got}"
    if v == "minLength":
        return key, "must not be empty"
    if v == "minItems":
        return key, f"needs at least {error.validator_value} item(s)"
    if v == "uniqueItems":
        return key, "items must be unique"
    if v == "required":
        return key, f"missing required key; {error.message}"
    return key, error.message


def with_defaults(node_schema: dict, value: Any) -> Any:
    """Return ``value`` with every missing key filled from the schema's defaults."""
    value = copy.deepcopy(value)
    if isinstance(value, dict) and "properties" in node_schema:
        for name, sub in node_schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = with_defaults(sub, value[name])
    elif isinstance(value, list) and isinstance(node_schema.get("items"), dict):
        value = [with_defaults(node_schema["items"], item) for item in value]
    return value


def _check_semantics(cfg: dict, source: str) -> None:
    """Rules the schema alone cannot say."""
    if cfg["backend"] not in AVAILABLE_BACKENDS:
        raise ConfigError(
            source,
            "backend",
            f"backend {cfg['backend']!r} is not available in this version of dlhub; "
            f"allowed now: {_join(AVAILABLE_BACKENDS)}",
        )
    seen = {}
    defaults = []
    for i, profile in enumerate(cfg["profiles"]):
        if profile["name"] in seen:
            raise ConfigError(
                source,
                f"profiles[{i}].name",
                f"duplicate profile name {profile['name']!r} "
                f"(also profiles[{seen[profile['name']]}]); names must be unique",
            )
        seen[profile["name"]] = i
        if profile["default"]:
            defaults.append(i)
        if profile["gpus"] and not cfg["gpus"]["enabled"]:
            raise ConfigError(
                source,
                f"profiles[{i}].gpus",
                "GPUs are handed out by the GPU scheduler: set gpus.enabled; allowed: 0",
            )
    gpus = cfg["gpus"]
    if gpus["enabled"] and gpus["inventory"] == "declared" and not gpus["devices"]:
        raise ConfigError(
            source, "gpus.devices", "declare at least one GPU, or use inventory: nvml"
        )
    uuids = [d["uuid"] for d in gpus["devices"]]
    for i, uuid in enumerate(uuids):
        if uuid in uuids[:i]:
            raise ConfigError(source, f"gpus.devices[{i}].uuid", f"duplicate device {uuid!r}")
    if len(defaults) > 1:
        raise ConfigError(
            source,
            f"profiles[{defaults[1]}].default",
            "only one profile can be the default",
        )
    if gpus["enabled"] and gpus["inventory"] == "kubernetes" and cfg["backend"] != "kubernetes":
        raise ConfigError(
            source,
            "gpus.inventory",
            "inventory: kubernetes needs backend: kubernetes; allowed here: declared, nvml",
        )
    groups = [v["group"] for v in cfg["volumes"]["groups"]]
    for i, group in enumerate(groups):
        if group in groups[:i]:
            raise ConfigError(
                source,
                f"volumes.groups[{i}].group",
                f"group {group!r} already has a volume; one volume per group",
            )
    mounts = {}
    for key, mount in volume_mounts(cfg):
        if mount in mounts:
            raise ConfigError(
                source, f"{key}.mount", f"{mount!r} is already the mount of {mounts[mount]}"
            )
        if ".." in mount.split("/"):
            raise ConfigError(source, f"{key}.mount", "a mount path cannot contain '..'")
        if cfg["backend"] == "local" and mount.startswith("/"):
            raise ConfigError(
                source,
                f"{key}.mount",
                "the local backend links volumes into each user's directory: "
                "give a path relative to it",
            )
        mounts[mount] = key
    _check_names(cfg, source)
    _check_auth(cfg["auth"], source)
    from .ldap import problems as ldap_problems

    for key, problem in ldap_problems(cfg["auth"]):
        raise ConfigError(source, key, problem)
    from .tls import problems as tls_problems

    for key, problem in tls_problems(cfg):
        raise ConfigError(source, key, problem)


def _check_auth(auth: dict, source: str) -> None:
    """``auth.type: oidc`` needs its provider, its client and someone allowed in."""
    if auth["type"] != "oidc":
        return
    oidc = auth["oidc"]
    for key in ("issuer", "client_id"):
        if not oidc[key]:
            raise ConfigError(source, f"auth.oidc.{key}", "required with auth.type: oidc")
    if bool(oidc["client_secret"]) == bool(oidc["client_secret_file"]):
        raise ConfigError(
            source,
            "auth.oidc.client_secret",
            "set exactly one of auth.oidc.client_secret and auth.oidc.client_secret_file",
        )
    from .directory import nobody_allowed

    nobody = nobody_allowed(auth, "oidc")
    if nobody:
        raise ConfigError(source, *nobody)


#: Longest ``<fullname>-group-`` the chart makes (its ``<fullname>`` has at most 40 characters).
_LONGEST_CLAIM_PREFIX = 40 + len("-group-")


def _check_names(cfg: dict, source: str) -> None:
    """Names derived from the config's names must not collide: two group volumes never get
    one docker volume, directory, pod volume or claim, and no volume mounts what another
    volume or a user's home is (``<name_prefix>-home-<user>``, the claim ``home-<user>``)."""
    from .naming import MAX_DNS_LABEL, dns_label
    from .volumes import group_volume_name

    volumes = cfg["volumes"]
    derived: dict[str, str] = {}  # derived name -> key of the group it is derived from
    for i, v in enumerate(volumes["groups"]):
        key = f"volumes.groups[{i}].group"
        names = [f"volume {group_volume_name(v['group'])}"]
        # the claim's slug, for every length of <fullname>- the chart can make
        for prefix in range(len("x-group-"), _LONGEST_CLAIM_PREFIX + 1):
            names.append(f"claim slug {dns_label(v['group'], MAX_DNS_LABEL - prefix)}")
        for name in dict.fromkeys(names):
            if name in derived:
                raise ConfigError(
                    source,
                    key,
                    f"group {v['group']!r} would get the {name} of {derived[name]}; "
                    "rename one of the groups",
                )
            derived[name] = key
    own = {"datasets": "datasets", "shared": "shared"}
    own.update({group_volume_name(v["group"]): v["group"] for v in volumes["groups"]})
    prefix = cfg["docker"]["name_prefix"]
    homes = {"docker": f"{prefix}-home-", "kubernetes": "home-"}.get(cfg["backend"])
    sources: dict[str, str] = {}
    for key, v in [(f"volumes.{n}", volumes[n]) for n in ("datasets", "shared")] + [
        (f"volumes.groups[{i}]", v) for i, v in enumerate(volumes["groups"])
    ]:
        src = v["source"]
        if not src or ("enabled" in v and not v["enabled"]):
            continue
        if src in sources:
            raise ConfigError(
                source,
                f"{key}.source",
                f"{src!r} is already the source of {sources[src]}; "
                "give each volume a source of its own",
            )
        sources[src] = key
        if homes and src.startswith(homes):
            raise ConfigError(
                source,
                f"{key}.source",
                f"{src!r} is named like a user's home ({homes}<user>); "
                "choose another name for the volume",
            )
        if cfg["backend"] == "docker" and src.startswith(f"{prefix}-"):
            name = src[len(prefix) + 1 :]
            if name in own:
                raise ConfigError(
                    source,
                    f"{key}.source",
                    f"{src!r} is dlhub's own volume {name!r}; leave source empty to use it, "
                    "or choose another name",
                )


def volume_mounts(cfg: dict) -> list[tuple[str, str]]:
    """(config key, mount path) of every declared volume; a group's default is filled in."""
    volumes = cfg["volumes"]
    out = [
        (f"volumes.{name}", volumes[name]["mount"])
        for name in ("datasets", "shared")
        if volumes[name]["enabled"]
    ]
    for i, v in enumerate(volumes["groups"]):
        out.append((f"volumes.groups[{i}]", v["mount"] or f"groups/{v['group']}"))
    return out


def validate(raw: Any, source: str = BUILTIN) -> dict:
    """Validate a parsed config document and return it with defaults filled in."""
    if raw is None:
        raw = {}
    validator = Draft202012Validator(schema())
    errors = sorted(
        validator.iter_errors(raw),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        key, problem = _problem(errors[0])
        raise ConfigError(source, key, problem)
    written = _admins_written(raw)
    cfg = with_defaults(schema(), raw)
    if cfg["auth"]["type"] in DIRECTORY_AUTH and not written:
        # the built-in [admin] is for native log-in, where nobody can sign up as "admin";
        # under a directory it would make whoever the provider calls "admin" a hub admin
        cfg["auth"]["admin_users"] = []
    _check_semantics(cfg, source)
    return cfg


#: Kinds of log-in whose usernames come from an identity provider or a directory.
DIRECTORY_AUTH = ("oidc", "ldap")


def _admins_written(raw: dict) -> bool:
    """Whether the operator's document sets ``auth.admin_users`` itself."""
    auth = raw.get("auth") if isinstance(raw, dict) else None
    return isinstance(auth, dict) and "admin_users" in auth


def load_platform_config(path: str | os.PathLike | None = None) -> dict:
    """Load and validate the platform config.

    ``path`` defaults to ``$DLHUB_CONFIG``; with neither, the built-in defaults are used.
    """
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        return validate({})
    source = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(source, "", "is a directory, not a YAML file") from None
    except PermissionError:
        raise ConfigError(source, "", "permission denied reading the file") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "", "not a UTF-8 text file") from None
    except OSError as e:
        raise ConfigError(source, "", f"cannot read the file ({e.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise ConfigError(source, "", f"not valid YAML{where}: {problem}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(
            source, "", f"the top level must be a mapping of keys, got {_describe(raw)}"
        )
    return validate(raw, source)
