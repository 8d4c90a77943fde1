"""Fixtures for the Helm chart's offline tests (no cluster: `helm template` and `helm lint`).

- ``helm``: the path of helm v3.19.0, installed by ``tools/helm.py install`` when missing
  (part_missing when it cannot be had: a skip locally, a failure in CI).
- ``render``: ``render(*values_files, api_versions=(), set_json=())`` runs ``helm template``
  and returns the rendered documents (dicts); results are cached per argument set.
- ``render_case``: the documents of one named case of :data:`CASES`, by name.
- ``k8s_validate``: ``kubernetes_validate.validate`` bound to :data:`KUBE_VERSION`, strict
  (part_missing when kubernetes-validate is not installed).

Plain helpers (helm_template, kinds, one, pod_specs, ...) are in chartkit.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from chartkit import CASES, HELM_VERSION, KUBE_VERSION, REPO, helm_template

from hubtest import part_missing


def _helm_version(path: str) -> str:
    try:
        result = subprocess.run(
            [path, "version", "--short"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


@pytest.fixture(scope="session")
def helm() -> str:
    where = subprocess.run(
        [sys.executable, str(REPO / "tools" / "helm.py"), "where"],
        capture_output=True,
        text=True,
    )
    if where.returncode != 0:
        install = subprocess.run(
            [sys.executable, str(REPO / "tools" / "helm.py"), "install"],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            part_missing(
                f"helm {HELM_VERSION} could not be installed (`python3 tools/helm.py install`): "
                f"{(install.stderr or install.stdout).strip()[-500:]}"
            )
        where = subprocess.run(
            [sys.executable, str(REPO / "tools" / "helm.py"), "where"],
            capture_output=True,
            text=True,
        )
    path = where.stdout.strip()
    if not _helm_version(path).startswith(HELM_VERSION):
        part_missing(f"helm {HELM_VERSION} is not runnable at {path!r}")
    return path


@pytest.fixture(scope="session")
def render(helm):
    cache: dict[tuple, list[dict]] = {}

    def render_(*values, api_versions=(), set_json=()) -> list[dict]:
        key = (tuple(map(str, values)), tuple(api_versions), tuple(set_json))
        if key not in cache:
            result = helm_template(helm, tuple(values), tuple(api_versions), tuple(set_json))
            assert result.returncode == 0, f"helm template {key} failed:\n{result.stderr}"
            cache[key] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return cache[key]

    return render_


@pytest.fixture(scope="session")
def render_case(render):
    def render_case_(name: str) -> list[dict]:
        values, apis = CASES[name]
        return render(*values, api_versions=apis)

    return render_case_


@pytest.fixture(scope="session")
def k8s_validate():
    try:
        import kubernetes_validate
    except ImportError:
        part_missing(
            "kubernetes-validate is not installed (`.venv/bin/pip install kubernetes-validate`)"
        )

    def validate(doc: dict) -> None:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)

    return validate
