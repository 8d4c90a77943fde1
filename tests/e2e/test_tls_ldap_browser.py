"""HTTPS and LDAP in a real browser: Chromium trusts the test's own CA through an NSS
database (no ignore-certificate flag), an LDAP user of a real slapd logs in on the hub's
form over https and lands in JupyterLab with their directory group's folder; the docker
backend serves https the same way.

Screenshots go to test-artifacts/ (docs/authentication.md shows them as
docs/images/auth-ldap-*.png).
"""

from __future__ import annotations

import os
import re

import pytest
import requests
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from dockertest import docker_section
from hubtest import free_port, new_password
from ldaptest import directory_fixtures, ldap_section

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 180_000

PASSWORDS = {"alice": new_password(), "carol": new_password()}
GROUPS = {"ml-team": ["alice"], "dlhub-admins": ["carol"]}

#: the name prefix and network of this module's docker hub (tests/e2e/conftest.py: names)
DOCKER_NAMES = ("dltls", "dlhub-tls")


ca, directory = directory_fixtures(PASSWORDS, GROUPS)


@pytest.fixture(scope="module")
def redirect_port():
    return free_port()


@pytest.fixture(scope="module")
def hub(hub_factory, ca, directory, redirect_port):
    config = {
        "auth": {"type": "ldap", "admin_users": [], "ldap": ldap_section(directory, ca)},
        "volumes": {"groups": [{"group": "ml-team"}]},
        "culling": {"enabled": False},
    }
    return ca.https_hub(
        hub_factory, config, "tls-ldap", redirect_http_port=redirect_port, hsts=True
    )


@pytest.fixture(scope="module")
def trusting(browser, ca, tmp_path_factory):
    """A Chromium whose NSS database trusts the test's CA (and nothing is ignored)."""
    from browsertest import CHROMIUM, CHROMIUM_ARGS

    home = ca.chromium_home(tmp_path_factory.mktemp("chromium-home"))
    trusting = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        env={**os.environ, "HOME": str(home)},
    )
    yield trusting
    trusting.close()


def log_in(page, hub, name: str, password: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")


def test_a_browser_without_the_ca_refuses_the_certificate(hub, browser):
    page = browser.new_context().new_page()
    with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
        page.goto(f"{hub.url}/hub/login")
    page.context.close()


def test_an_ldap_user_logs_in_over_https_into_jupyterlab(hub, trusting, artifacts):
    context = trusting.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{hub.url}/hub/login")
    assert page.url.startswith("https://")
    page.fill("#username_input", "alice")
    page.fill("#password_input", PASSWORDS["alice"])
    page.screenshot(path=artifacts / "auth-ldap-login.png")
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"https://.*/user/alice/lab.*"), timeout=SPAWN_TIMEOUT_MS)
    page.locator(".jp-Launcher").first.wait_for(timeout=SPAWN_TIMEOUT_MS)
    # the directory's group is the hub's group, and its folder is in the file browser
    browser_item = page.locator(".jp-DirListing-item", has_text="groups")
    expect(browser_item).to_be_visible(timeout=30_000)
    browser_item.dblclick()
    expect(page.locator(".jp-DirListing-item", has_text="ml-team")).to_be_visible(timeout=30_000)
    page.screenshot(path=artifacts / "auth-ldap-jupyterlab.png")
    # every cookie the hub and the server set is Secure
    cookies = context.cookies()
    assert {"jupyterhub-hub-login", "jupyterhub-session-id", "jupyterhub-user-alice"} <= {
        c["name"] for c in cookies
    }, cookies
    assert all(c["secure"] for c in cookies), cookies
    context.close()


def test_a_wrong_password_shows_a_clear_page(hub, trusting):
    page = trusting.new_context().new_page()
    log_in(page, hub, "alice", "not-" + PASSWORDS["alice"])
    expect(page.locator(".login_error")).to_contain_text("Invalid username or password")
    assert "/hub/login" in page.url
    page.context.close()


def test_plain_http_in_the_address_bar_lands_on_https(hub, trusting, redirect_port):
    page = trusting.new_context().new_page()
    page.goto(f"http://127.0.0.1:{redirect_port}/hub/login")
    assert page.url == f"{hub.url}/hub/login"
    expect(page.locator("#username_input")).to_be_visible()
    page.context.close()


def test_the_admin_group_member_reaches_the_admin_panel(hub, trusting):
    page = trusting.new_context().new_page()
    log_in(page, hub, "carol", PASSWORDS["carol"])
    page.wait_for_url(re.compile(r".*/(user/carol|hub/spawn).*"), timeout=SPAWN_TIMEOUT_MS)
    response = page.goto(f"{hub.url}/hub/admin")
    assert response.status == 200
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    page.context.close()


# --- the docker backend over https ----------------------------------------------------------


@pytest.mark.docker
def test_the_docker_backend_serves_https_and_reaches_containers_in_plain_http(
    hub_factory, engine, names, ca
):
    config = {
        "backend": "docker",
        "docker": docker_section(names),
        "profiles": [{"name": "cpu", "cpu_limit": 1, "mem_limit": "1G", "default": True}],
        "culling": {"enabled": False},
    }
    hub = ca.https_hub(hub_factory, config, "tls-docker")
    try:
        admin = hub.admin("admin", new_password())
        token = admin.new_token("docker tls")
        headers = {"Authorization": f"token {token}"}
        admin.start_server("admin", timeout=180)
        # the browser side is https with the test CA's certificate ...
        r = requests.get(
            f"{hub.url}/user/admin/api/status", headers=headers, verify=str(ca.ca_file), timeout=30
        )
        assert r.status_code == 200, r.text
        # ... and the proxy reaches the container over the users' network in plain http
        route = admin.api("GET", "/users/admin").json()["servers"][""]["url"]
        assert route == "/user/admin/"
        container = engine.containers.get(f"{names['prefix']}-admin")
        target = container.attrs["NetworkSettings"]["Networks"][names["network"]]["IPAddress"]
        assert f"http://{target}:8888" in hub.log()
    finally:
        hub.stop()
