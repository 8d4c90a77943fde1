"""Shared fixtures.

- ``hub_factory``: start real hubs (``hubtest.RunningHub``) that are stopped after the test
  module; a failing test gets the last lines of each running hub's log in its report.
- ``require_hub_parts``: skip (locally) or fail (with ``CI`` set) when the user environment
  or the proxy is not installed.
- ``kubeconfig``: a kubeconfig naming an API server that is never contacted, for tests
  that make KubeSpawner objects without a cluster (KubeSpawner reads it when made).
"""

from __future__ import annotations

import pytest

from hubtest import RunningHub, missing_parts, part_missing

_running: list[RunningHub] = []


@pytest.fixture(scope="session")
def require_hub_parts():
    missing = missing_parts()
    if missing:
        message = "a real hub needs: " + "; ".join(missing)
        part_missing(message)


@pytest.fixture(scope="module")
def hub_factory(require_hub_parts, tmp_path_factory):
    started: list[RunningHub] = []

    def make(config: dict | None = None, name: str = "hub", start: bool = True) -> RunningHub:
        hub = RunningHub(tmp_path_factory.mktemp(name), config)
        started.append(hub)
        _running.append(hub)
        return hub.start() if start else hub

    yield make
    for hub in started:
        hub.stop()
        _running.remove(hub)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for hub in _running:
            tail = "\n".join(hub.log().splitlines()[-150:])
            report.sections.append((f"hub log {hub.log_file}", tail))


#: an API server address nothing listens on: a test using it starts no pod
OFFLINE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    from kubernetes_asyncio.config import kube_config

    path = tmp_path / "kubeconfig"
    path.write_text(OFFLINE_KUBECONFIG)
    # kubernetes_asyncio read $KUBECONFIG when imported: point its default at this file
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    return path
