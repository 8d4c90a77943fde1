"""Shared fixtures.

- ``hub_factory``: start real hubs (``hubtest.RunningHub``) that are stopped after the test
  module; a failing test gets the last lines of each running hub's log in its report.
- ``require_hub_parts``: skip (locally) or fail (with ``CI`` set) when the user environment
  or the proxy is not installed.
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
