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
- ``k8s_record``: ``record(scenario, what, seconds)`` keeps a measured time of the fault
  scenarios (tests/k8s/test_k8s_faults.py); pytest's summary prints them ("kubernetes:
  measured times") and ``test-artifacts/k8s-fault-times.json`` keeps them.

A failing test gets the tails of the kubelet's and the controller-manager's logs and the
namespace's events in its report.
"""

from __future__ import annotations

import importlib
import json
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
#: ``(scenario, what, seconds)`` measured by the fault scenarios, in the order taken
RECORDS: list[tuple[str, str, float]] = []


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


@pytest.fixture(scope="session")
def k8s_record():
    def record(scenario: str, what: str, seconds: float) -> float:
        """Keep a measured time for the session's summary; returns ``seconds``."""
        RECORDS.append((scenario, what, round(float(seconds), 2)))
        return seconds

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RECORDS:
        return
    terminalreporter.write_sep("=", "kubernetes: measured times")
    width = max(len(f"{s}: {w}") for s, w, _ in RECORDS)
    for scenario, what, seconds in RECORDS:
        terminalreporter.write_line(f"{f'{scenario}: {what}':<{width}}  {seconds:8.2f} s")
    out = REPO / "test-artifacts" / "k8s-fault-times.json"
    out.parent.mkdir(exist_ok=True)
    rows = [{"scenario": s, "what": w, "seconds": t} for s, w, t in RECORDS]
    out.write_text(json.dumps(rows, indent=1) + "\n")


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
