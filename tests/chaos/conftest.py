"""The chaos suite's fixtures: a hub with users at work, and the times recovery took.

- ``chaos_record``: ``record(scenario, what, seconds, unit="s")`` keeps a measured time
  (or a count, with another unit); at the end of the session pytest's summary prints
  every record (``pytest_terminal_summary``) and ``test-artifacts/chaos-times.json``
  keeps them. Every chaos module records through it.
- ``world``: one hub per module with work going on (:class:`World`): the GPU scheduler on
  one declared GPU (``GPU-0``), five users' servers running, one of them (``ana``)
  holding the GPU's lease and one more user (``quinn``) queued for it. The backend is the
  fixture's param (``parametrize("world", [...], indirect=True)``) or the module's
  ``CHAOS_BACKEND`` (default ``"docker"``; ``"local"`` runs the servers as processes).
  The docker backend needs the engine and the user image (``make images``); a GPU
  container needs the engine's NVIDIA runtime, so where the engine has none the
  docker world's five servers run the CPU profile and nobody holds or waits for the GPU
  (``World.gpu_holder`` and ``World.queued`` are None); the local world always has both.
- ``chaos_engine``: a Docker client once the engine answers and the user image exists.

Helpers for the scenarios are in ``chaoskit``: :func:`measure` (seconds until a condition
holds), :func:`pids_of` and :func:`cmdline` (processes by what they run), :func:`kill9`.
"""

from __future__ import annotations

import json

import pytest
from chaoskit import RECORDS, World, record, start_world, world_config

from dockertest import USER_IMAGE, docker_names
from hubtest import REPO, docker_engine_with, remove_docker_objects


@pytest.fixture(scope="session")
def chaos_record():
    """``record(scenario, what, seconds)``: keep a measured time for the summary."""
    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RECORDS:
        return
    terminalreporter.write_sep("=", "chaos: measured times")
    width = max(len(f"{s}: {w}") for s, w, _, _ in RECORDS)
    for scenario, what, value, unit in RECORDS:
        terminalreporter.write_line(f"{f'{scenario}: {what}':<{width}}  {value:8.2f} {unit}")
    out = REPO / "test-artifacts" / "chaos-times.json"
    out.parent.mkdir(exist_ok=True)
    rows = [{"scenario": s, "what": w, "value": v, "unit": u} for s, w, v, u in RECORDS]
    out.write_text(json.dumps(rows, indent=1) + "\n")


@pytest.fixture(scope="module")
def chaos_engine():
    return docker_engine_with(USER_IMAGE)


@pytest.fixture(scope="module")
def world(request, hub_factory, tmp_path_factory) -> World:
    """The module's hub with five servers running, a lease and a queue (see above)."""
    backend = getattr(request, "param", None) or getattr(request.module, "CHAOS_BACKEND", "docker")
    names = None
    engine = None
    if backend == "docker":
        engine = docker_engine_with(USER_IMAGE)
        names = docker_names("dlc", "dlhub-chaos")
        gpus = "nvidia" in (engine.info().get("Runtimes") or {})
    else:
        gpus = True
    hub = hub_factory(world_config(backend, names), name=f"chaos-{backend}", start=False)
    try:
        hub.start(timeout=150)  # a busy 2-core machine: the hub's start took up to 24 s
        yield start_world(hub, backend, gpus)
    finally:
        hub.stop()
        if engine is not None:
            remove_docker_objects(engine, names["prefix"], names["network"])
