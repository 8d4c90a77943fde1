"""Named servers in a real Chromium (``servers.per_user: 1``): the hub home (JupyterHub's page
with dlhub's templates) adds a server, its own spawn form chooses its profile, and it runs
beside the default server at its own URL."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from browsertest import log_in
from hubtest import new_password, start_server, stop_server, token_api

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 180_000
PROFILES = [
    {"name": "cpu", "display_name": "CPU", "default": True},
    {"name": "small", "display_name": "Small CPU", "cpu_limit": 1, "mem_limit": "2G"},
]


@pytest.fixture(scope="module")
def hub(hub_factory):
    config = {"profiles": PROFILES, "servers": {"per_user": 1}, "culling": {"enabled": False}}
    return hub_factory(config, name="named-browser")


def test_the_hub_home_adds_and_starts_a_named_server(hub, browser, artifacts):
    password = new_password()
    admin = hub.admin()
    hub.session().signup("alice", password)
    admin.approve("alice")
    session = hub.session()
    session.login("alice", password)
    token = session.new_token("named servers")
    start_server(hub.url, token, "alice", {"profile": "cpu"})

    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    try:
        log_in(page, hub, "alice", password)
        page.wait_for_load_state()
        page.goto(f"{hub.url}/hub/home")
        page.fill(".new-server-name", "training")
        page.click(".new-server-btn")
        row = page.locator('tr[data-server-name="training"]')
        row.locator(".start-server").click()
        # the server's own spawn form
        page.wait_for_url(re.compile(r".*/hub/spawn/alice/training$"))
        page.check("#profile-small")
        page.locator("#spawn_form [type=submit]").click()
        page.wait_for_url(re.compile(r".*/user/alice/training/lab.*"), timeout=SPAWN_TIMEOUT_MS)
        page.locator(".jp-Launcher").first.wait_for(timeout=SPAWN_TIMEOUT_MS)

        page.goto(f"{hub.url}/hub/home")
        expect(row.locator(".server-link")).to_be_visible()
        expect(row.locator(".server-link")).to_have_text("/user/alice/training/")
        page.screenshot(path=artifacts / "named-servers-home.png", full_page=True)
        # one server more than the limit: JupyterHub's dialog says the maximum
        page.fill(".new-server-name", "another")
        page.click(".new-server-btn")
        dialog = page.locator(".modal-body", has_text="maximum of 1 named servers")
        expect(dialog).to_be_visible()
    finally:
        page.context.close()

    model = token_api(hub.url, token, "GET", "/hub/api/users/alice").json()
    assert model["servers"][""]["user_options"] == {"profile": "cpu"}
    assert model["servers"]["training"]["user_options"] == {"profile": "small"}
    assert model["servers"]["training"]["ready"]
    stop_server(hub.url, token, "alice", server="training")
    stop_server(hub.url, token, "alice")
