"""Generate the Helm chart's values.schema.json from the chart's and the platform's schemas.

    python3 tools/chart_schema.py           # write values.schema.json and docs/chart-values.md
    python3 tools/chart_schema.py --check   # exit 1 when a committed file is stale

The chart's own values are described in helm/dlhub/chart-schema.yaml (JSON Schema
draft-07 as YAML). `values.platform` is the platform config, so its schema is
hub_config/schema.yaml (JSON Schema 2020-12), translated here to draft-07, the dialect
helm's values schemas are written in, with `backend` restricted to `kubernetes` (the only
backend the chart runs). A 2020-12 keyword that draft-07 would silently ignore is an
error, so the chart never validates less than the hub does.

Needs PyYAML; without it in this Python, the repository's .venv is used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "dlhub"
CHART_SCHEMA = CHART / "chart-schema.yaml"
PLATFORM_SCHEMA = REPO / "hub_config" / "schema.yaml"
OUTPUT = CHART / "values.schema.json"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"

#: 2020-12 keywords with no draft-07 meaning (draft-07 would ignore them: refuse instead)
UNTRANSLATABLE = {
    "prefixItems",
    "unevaluatedItems",
    "unevaluatedProperties",
    "dependentRequired",
    "dependentSchemas",
    "$dynamicRef",
    "$dynamicAnchor",
    "$anchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "minContains",
    "maxContains",
    "$vocabulary",
}
#: keywords whose values are data, not schemas
DATA_KEYWORDS = {"default", "enum", "const", "examples"}
#: where the platform schema sits in the generated file (for its internal $refs)
PLATFORM_POINTER = "#/properties/platform"

BACKEND = {
    "description": (
        "Where user servers run. Always `kubernetes` with this chart (the chart sets it); "
        "the other backends run without Kubernetes."
    ),
    "type": "string",
    "enum": ["kubernetes"],
    "default": "kubernetes",
}

PLATFORM_DESCRIPTION = (
    "The dlhub platform config: the same tree as a dlhub.yaml for the local and docker "
    "backends (docs/config-reference.md), checked by the same schema. The chart writes it, "
    "with `backend: kubernetes`, into the Secret `<fullname>-platform` that the hub and the "
    "GPU scheduler read."
)


def load_yaml(path: Path):
    try:
        import yaml
    except ImportError:
        venv_python = REPO / ".venv" / "bin" / "python"
        if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve():
            os.execv(str(venv_python), [str(venv_python), *sys.argv])
        raise SystemExit(
            "chart schema: PyYAML is missing; `pip install pyyaml` or run `make install`"
        ) from None
    try:
        return yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as e:
        raise SystemExit(
            f"chart schema: {path.relative_to(REPO)} is not valid YAML: {e}"
        ) from None


class Untranslatable(ValueError):
    pass


def to_draft07(node, where: str = "platform"):
    """A 2020-12 schema node as draft-07 (recursively); raises Untranslatable."""
    if isinstance(node, list):
        return [to_draft07(item, f"{where}[{i}]") for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    found = UNTRANSLATABLE.intersection(node)
    if found:
        raise Untranslatable(f"{where}: {', '.join(sorted(found))} has no draft-07 equivalent")
    if isinstance(node.get("items"), list):
        raise Untranslatable(f"{where}.items: a list of schemas means prefixItems in 2020-12")
    out = {}
    for key, value in node.items():
        if key == "$schema":
            continue
        if key == "$defs":
            key = "definitions"
        if key in DATA_KEYWORDS or key.startswith("x-"):
            pass  # values, not schemas
        elif key == "$ref" and isinstance(value, str):
            value = translate_ref(value, where)
        elif key in ("properties", "definitions", "$defs", "patternProperties"):
            value = {name: to_draft07(sub, f"{where}.{name}") for name, sub in value.items()}
        else:
            value = to_draft07(value, f"{where}.{key}")
        out[key] = value
    # in draft-07 a $ref hides its siblings; 2020-12 applies both
    if "$ref" in out and len(set(out) - {"$ref", "description", "title", "$comment"}) > 0:
        ref = out.pop("$ref")
        out = {**out, "allOf": [{"$ref": ref}, *out.get("allOf", [])]}
    return out


def translate_ref(ref: str, where: str) -> str:
    if ref == "#":
        return PLATFORM_POINTER
    if ref.startswith("#/"):
        return PLATFORM_POINTER + ref[1:].replace("/$defs/", "/definitions/", 1)
    raise Untranslatable(f"{where}.$ref: only references within the schema are supported")


def platform_schema(source: dict) -> dict:
    schema = to_draft07(source)
    schema.pop("title", None)
    schema["description"] = PLATFORM_DESCRIPTION
    properties = schema.setdefault("properties", {})
    properties["backend"] = dict(BACKEND)
    return schema


def build() -> dict:
    chart = load_yaml(CHART_SCHEMA)
    platform = load_yaml(PLATFORM_SCHEMA)
    out = {
        "$schema": DRAFT_07,
        "$comment": (
            "Generated by tools/chart_schema.py from helm/dlhub/chart-schema.yaml and "
            "hub_config/schema.yaml; edit those and run `python3 tools/chart_schema.py`."
        ),
    }
    out.update({k: v for k, v in chart.items() if k != "$schema"})
    out["properties"] = {**chart.get("properties", {}), "platform": platform_schema(platform)}
    return out


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


VALUES = CHART / "values.yaml"
VALUES_DOC = REPO / "docs" / "chart-values.md"
VALUES_DOC_HEADER = """# Chart values

<!-- Generated from helm/dlhub/chart-schema.yaml and values.yaml by `make docs`;
     edit those, not this file. -->

The values of the Helm chart in `helm/dlhub` ([Running on Kubernetes](kubernetes.md)):
each key with its type, its default from the chart's `values.yaml`, and what it does.
`helm install`, `helm upgrade` and `helm template` check a values file against the
chart's `values.schema.json` and name the key that is wrong. Everything under
`platform` is the platform config, described key by key in the
[config reference](config-reference.md).

"""


def _resolve(node: dict, definitions: dict) -> dict:
    """A node with its `$ref` (to the chart's definitions) merged in; the node's own keys win."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/definitions/"):
        return node
    target = _resolve(definitions[ref.rsplit("/", 1)[1]], definitions)
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _type(node: dict) -> str:
    t = node.get("type", "any")
    return " or ".join(str(x) for x in t) if isinstance(t, list) else str(t)


def _escape_html(text: str) -> str:
    """`<` and `>` outside code spans as entities, so "<release>" is not read as a tag."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _values_entries(node: dict, path: str, defaults, definitions: dict, out: list) -> None:
    node = _resolve(node, definitions)
    if path:
        lines = [f"### `{path}`", "", f"- type: {_type(node)}"]
        if "enum" in node:
            lines.append("- one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"]))
        properties = node.get("properties")
        if defaults is not None and not (properties and isinstance(defaults, dict)):
            lines.append(f"- default: `{json.dumps(defaults, ensure_ascii=False)}`")
        description = _escape_html(" ".join(str(node.get("description", "")).split()))
        if description:
            lines += ["", description]
        out.append("\n".join(lines) + "\n")
    for name, sub in (node.get("properties") or {}).items():
        sub_defaults = defaults.get(name) if isinstance(defaults, dict) else None
        _values_entries(sub, f"{path}.{name}" if path else name, sub_defaults, definitions, out)


def render_values_doc() -> str:
    """docs/chart-values.md: the chart's own values (not `platform`) from its schema."""
    chart = load_yaml(CHART_SCHEMA)
    defaults = load_yaml(VALUES) or {}
    definitions = chart.get("definitions", {})
    out: list[str] = []
    top = {k: v for k, v in chart.get("properties", {}).items() if k != "platform"}
    _values_entries({"properties": top}, "", defaults, definitions, out)
    out.append(
        "### `platform`\n\n- type: object\n\nThe platform config (`backend` is always "
        "`kubernetes` with this chart): every key is in the "
        "[config reference](config-reference.md).\n"
    )
    return VALUES_DOC_HEADER + "\n".join(out)


def say(message: str) -> None:
    print(f"==> chart schema: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when values.schema.json is stale"
    )
    args = parser.parse_args(argv)
    try:
        text = render(build())
    except Untranslatable as e:
        print(f"chart schema: {PLATFORM_SCHEMA.relative_to(REPO)}: {e}", file=sys.stderr)
        return 1
    relative = OUTPUT.relative_to(REPO)
    doc, doc_relative = render_values_doc(), VALUES_DOC.relative_to(REPO)
    if args.check:
        current = OUTPUT.read_text("utf-8") if OUTPUT.exists() else ""
        current_doc = VALUES_DOC.read_text("utf-8") if VALUES_DOC.exists() else ""
        if current_doc != doc:
            print(
                f"chart schema: {doc_relative} is stale; run `python3 tools/chart_schema.py`",
                file=sys.stderr,
            )
            return 1
        if current != text:
            print(
                f"chart schema: {relative} is stale (hub_config/schema.yaml or "
                f"{CHART_SCHEMA.relative_to(REPO)} changed); run `python3 tools/chart_schema.py`",
                file=sys.stderr,
            )
            return 1
        say(f"{relative} is current")
        return 0
    OUTPUT.write_text(text, "utf-8")
    say(f"wrote {relative}")
    VALUES_DOC.write_text(doc, "utf-8")
    say(f"wrote {doc_relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
