"""What the chart tests share: where the chart is, the cases they render, `helm template`,
and small accessors for rendered manifests (plain functions, no fixtures)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "dlhub"
HERE = Path(__file__).resolve().parent
HELM_VERSION = "v3.19.0"
KUBE_VERSION = "1.30.0"
RELEASE = "t"
NAMESPACE = "dlhub"
PDB_API = "policy/v1/PodDisruptionBudget"

#: the values files and capabilities the suites render: name -> (values files, api versions)
CASES = {
    "default": ((), ()),
    "gpu": (("values-gpu.yaml",), ()),
    "all": (("values-all.yaml",), (PDB_API,)),
}


def helm_template(
    helm: str,
    values: tuple[str | Path, ...] = (),
    api_versions: tuple[str, ...] = (),
    set_json: tuple[str, ...] = (),
    chart: Path = CHART,
) -> subprocess.CompletedProcess:
    """Run `helm template` (no cluster) and return the finished process."""
    args = [helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE]
    for file in values:
        args += ["--values", str(HERE / file)]
    for api in api_versions:
        args += ["--api-versions", api]
    for item in set_json:
        args += ["--set-json", item]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in kinds(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {[d['metadata'] for d in found]}"
    return found[0]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """(name, pod spec) of every workload's pod template."""
    workloads = ("Deployment", "StatefulSet", "DaemonSet", "Job")
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in workloads
    ]


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def env_of(container: dict) -> dict[str, dict]:
    """A container's env entries by name."""
    return {e["name"]: e for e in container.get("env", [])}


def component(doc: dict) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def dumps(doc) -> str:
    return json.dumps(doc, indent=1, sort_keys=True)
