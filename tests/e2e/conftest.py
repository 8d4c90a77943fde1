"""Browser fixtures: Debian's Chromium driven by Playwright.

- ``browser``: a headless Chromium (``/usr/bin/chromium``); missing, it is a skip
  locally and a failure when ``CI`` is set.
- ``artifacts``: ``test-artifacts/`` in the repository, where screenshots are kept.

Docker fixtures of the docker-backend modules (one per module):

- ``engine``: a Docker client once the engine answers and the user image exists (else
  ``part_missing``).
- ``names``: a fresh name prefix and network (:func:`dockertest.docker_names`) from the
  module's ``DOCKER_NAMES = (prefix, network)``; when the module ends, after its hub
  stopped, the containers, volumes and network named so go.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from browsertest import CHROMIUM, CHROMIUM_ARGS
from dockertest import USER_IMAGE, docker_names
from hubtest import REPO, docker_engine_with, part_missing, remove_docker_objects


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (run `make system-packages`)"
        part_missing(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def engine():
    return docker_engine_with(USER_IMAGE)


@pytest.fixture(scope="module")
def names(request, engine):
    made = docker_names(*request.module.DOCKER_NAMES)
    yield made
    # torn down after every fixture that asked for it, so after the hub that used it
    remove_docker_objects(engine, made["prefix"], made["network"])
