"""`helm lint --strict`, the generated values schema, and what the schema refuses."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from chartkit import CHART, HERE, REPO, helm_template

pytestmark = pytest.mark.k8s

VALUES_FILES = [None, "values-gpu.yaml", "values-all.yaml"]


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda v: v or "default")
def test_helm_lint_strict(helm, values):
    args = [helm, "lint", "--strict", str(CHART)]
    if values:
        args += ["--values", str(HERE / values)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_values_schema_is_current():
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "chart_schema.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_platform_schema_is_the_hubs(helm):
    """values.schema.json's platform part has every key of hub_config/schema.yaml."""
    import json

    chart = json.loads((CHART / "values.schema.json").read_text())
    platform = chart["properties"]["platform"]
    hub = yaml.safe_load((REPO / "hub_config" / "schema.yaml").read_text())
    assert set(platform["properties"]) == set(hub["properties"])
    assert platform["properties"]["backend"]["enum"] == ["kubernetes"]
    assert platform["additionalProperties"] is False
    assert chart["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert chart["additionalProperties"] is False


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"platform": {"hub": {"poll_interval": "soon"}}}, "/platform/hub/poll_interval"),
        ({"platform": {"hubb": {}}}, "hubb"),
        ({"platform": {"auth": {"admin_users": ["has space"]}}}, "/platform/auth/admin_users/0"),
        ({"platform": {"profiles": [{"display_name": "no name"}]}}, "/platform/profiles/0"),
        ({"platform": {"backend": "docker"}}, "/platform/backend"),
        ({"platform": {"gpus": {"port": 70000}}}, "/platform/gpus/port"),
        ({"proxy": {"service": {"type": "External"}}}, "/proxy/service/type"),
        ({"sharedStorage": {"datasets": {"size": "lots"}}}, "/sharedStorage/datasets/size"),
        ({"replicas": 3}, "replicas"),
    ],
    ids=[
        "platform-type",
        "platform-unknown-key",
        "platform-pattern",
        "platform-required",
        "platform-backend",
        "platform-maximum",
        "service-type",
        "volume-size",
        "unknown-chart-key",
    ],
)
def test_invalid_values_are_refused_naming_the_key(helm, tmp_path, values, named):
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(values))
    result = helm_template(helm, (file,))
    assert result.returncode != 0, f"{values} was accepted"
    assert "schema" in result.stderr, result.stderr
    assert named in result.stderr, result.stderr


def _described_paths(node, schema, path, root):
    """Yield paths of values.yaml keys whose schema has no description."""
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[-1]] | {
            k: v for k, v in schema.items() if k != "$ref"
        }
    if not schema.get("description") and path:
        yield path
    if isinstance(node, dict) and "properties" in schema:
        for key, value in node.items():
            sub = schema["properties"].get(key)
            if sub is None:
                yield f"{path}.{key} (not in the schema)"
                continue
            yield from _described_paths(value, sub, f"{path}.{key}" if path else key, root)


def test_every_values_key_is_described():
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = list(_described_paths(values, schema, "", schema))
    assert not missing, f"values.yaml keys without a description in the schema: {missing}"


#: values whose contents are free-form Kubernetes objects or maps, documented as one key
FREE_FORM = {"resources", "annotations", "extraEnv", "nodeSelector", "affinity", "platform"}


def _leaf_keys(node, path=""):
    for key, value in node.items():
        full = f"{path}.{key}" if path else key
        if isinstance(value, dict) and value and key not in FREE_FORM:
            yield from _leaf_keys(value, full)
        else:
            yield full


def test_every_values_key_is_in_the_operators_table():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    missing = [key for key in _leaf_keys(values) if f"| `{key}` |" not in docs]
    assert not missing, f"docs/kubernetes.md's values table lacks: {missing}"
