"""Fixtures of the Kubernetes suite: a real single-node cluster (tools/kube_cluster.py).

- ``kube_cluster`` (session): the running :class:`kube_cluster.Cluster`: started (and built,
  the first time on a machine: about 4 minutes) when it does not run yet, and stopped at the
  end of the session only if this session started it. It needs root, the Docker engine and
  Debian's apt mirror (for the build); when one is missing it is a loud skip locally and a
  failure with ``CI`` set (``hubtest.part_missing``).
- ``k8s_namespace``: the name of a fresh namespace (with its default ServiceAccount) for
  one test; deleted afterwards (the teardown waits until its pods' containers are stopped,
  not for the API's finalization, which takes about half a minute).
- ``require_images``: a function ``require_images(*names)`` that returns the names when the
  Docker engine (which the kubelet uses) has those images, else calls ``part_missing``.
  Pods use them with ``imagePullPolicy: Never``: there is no registry.

A failing test gets the tails of the kubelet's and the controller-manager's logs and the
namespace's events in its report.
"""

from __future__ import annotations

import importlib
import os
import sys
import uuid
from pathlib import Path

import pytest

from hubtest import docker_engine_with, part_missing

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"


def load_tool():
    """tools/kube_cluster.py as a module. tools/ is not a package: its scripts import their
    siblings (host, kube_build, ...) from their own folder, which is on the path when they
    run as ``python3 tools/kube_cluster.py``; so here tools/ goes on the path too (last, so
    that it shadows nothing installed)."""
    if str(TOOLS) not in sys.path:
        sys.path.append(str(TOOLS))
    return importlib.import_module("kube_cluster")


_cluster = None


@pytest.fixture(scope="session")
def kube_cluster():
    global _cluster
    tool = load_tool()
    if os.geteuid() != 0:
        part_missing("the Kubernetes suite runs a kubelet and kube-proxy, which need root")
    cluster = tool.Cluster()
    try:
        started = cluster.start()
    except tool.ClusterError as e:
        part_missing(f"no Kubernetes cluster (`make cluster`): {e}")
    _cluster = cluster
    yield cluster
    _cluster = None
    if started:
        cluster.stop()


@pytest.fixture
def k8s_namespace(kube_cluster, request):
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube_cluster.create_namespace(name)
    request.node.k8s_namespace = name
    yield name
    kube_cluster.delete_namespace(name)


@pytest.fixture(scope="session")
def require_images():
    def require(*names: str) -> tuple[str, ...]:
        docker_engine_with(*names)
        return names

    return require


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or _cluster is None:
        return
    for component in ("kubelet", "kube-controller-manager"):
        report.sections.append((f"{component} log (tail)", _cluster.log(component, 60)))
    namespace = getattr(item, "k8s_namespace", None)
    if namespace:
        events = _cluster.kubectl("get", "events", "-n", namespace, check=False)
        report.sections.append((f"events in {namespace}", events.stdout + events.stderr))
