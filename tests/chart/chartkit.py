"""What the chart tests share: where the chart is, the cases they render, `helm template`,
and small accessors for rendered manifests (plain functions, no fixtures)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "dlhub"
HERE = Path(__file__).resolve().parent
HELM_VERSION = "v3.19.0"
KUBE_VERSION = "1.30.0"
RELEASE = "t"
#: the chart's ``<fullname>`` for :data:`RELEASE`
FULL = f"{RELEASE}-dlhub"
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


def rendered(done: subprocess.CompletedProcess) -> list[dict]:
    """The manifests of a `helm template` run (:func:`helm_template`) that must succeed."""
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


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


def hub_pod(docs: list[dict]) -> dict:
    """The pod spec of the hub's Deployment."""
    return one(docs, "Deployment", f"{FULL}-hub")["spec"]["template"]["spec"]


def hub_volume(docs: list[dict], name: str) -> tuple[dict, dict]:
    """The hub pod's volume ``name`` and the hub container's mount of it."""
    spec = hub_pod(docs)
    volume = next(v for v in spec["volumes"] if v["name"] == name)
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == name)
    return volume, mount


def platform_config(docs: list[dict]) -> dict:
    """The platform config (dlhub.yaml) the chart writes into its Secret for the hub."""
    return yaml.safe_load(one(docs, "Secret", f"{FULL}-platform")["stringData"]["dlhub.yaml"])


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
