"""Browser fixtures: Debian's Chromium driven by Playwright.

- ``browser``: a headless Chromium (``/usr/bin/chromium``); missing, it is a skip
  locally and a failure when ``CI`` is set.
- ``artifacts``: ``test-artifacts/`` in the repository, where screenshots are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hubtest import REPO, part_missing

CHROMIUM = os.environ.get("DLHUB_CHROMIUM", "/usr/bin/chromium")
# as the probe of these machines found: no background traffic, no sandbox as root
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


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
