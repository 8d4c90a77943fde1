"""The config reference (docs/config-reference.md), generated from the schema."""

from __future__ import annotations

import json

from .config import schema

HEADER = """# Config reference

<!-- Generated from hub_config/schema.yaml by `make docs`; edit the schema, not this file. -->

The platform config is one YAML file. Every key is optional: what you leave out takes
the default shown here, and an empty file (or none) runs dlhub on the local backend.
Point dlhub at a file with `make up CONFIG=path/to/dlhub.yaml` or the `DLHUB_CONFIG`
environment variable, and check one without starting anything with
`.venv/bin/dlhub check path/to/dlhub.yaml`.

An invalid file stops start-up with one message naming the file, the key and what is
allowed, for example:

    invalid dlhub config my.yaml: hub.hub_port: must be at most 65535, got 70000

"""


def _type(node: dict) -> str:
    t = node.get("type", "any")
    return " or ".join(t) if isinstance(t, list) else t


def _allowed(node: dict) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if "x-allowed" in node:
        parts.append(node["x-allowed"])
    if "minimum" in node:
        parts.append(f"≥ {node['minimum']}")
    if "exclusiveMinimum" in node:
        parts.append(f"> {node['exclusiveMinimum']}")
    if "maximum" in node:
        parts.append(f"≤ {node['maximum']}")
    return "; ".join(parts)


def _walk(node: dict, path: str, out: list[str]) -> None:
    required = set(node.get("required", []))
    for name, sub in node.get("properties", {}).items():
        key = f"{path}.{name}" if path else name
        out.append(f"### `{key}`\n")
        out.append(sub["description"].strip() + "\n")
        out.append(f"- type: {_type(sub)}")
        allowed = _allowed(sub)
        if allowed:
            out.append(f"- allowed: {allowed}")
        if name in required:
            out.append("- required")
        elif sub.get("type") != "object":
            out.append(f"- default: `{json.dumps(sub.get('default'))}`")
        out.append("")
        if sub.get("type") == "object":
            _walk(sub, key, out)
        elif sub.get("type") == "array" and isinstance(sub.get("items"), dict):
            if "properties" in sub["items"]:
                _walk(sub["items"], f"{key}[]", out)


def render_reference() -> str:
    out: list[str] = [HEADER]
    _walk(schema(), "", out)
    return "\n".join(out).rstrip() + "\n"
