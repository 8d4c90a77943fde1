"""OpenID Connect in a real browser: "Sign in with ..." on the hub, the provider's own log-in
page (tools/oidc_provider, started by the module), JupyterLab with the directory group's
folder, the group's GPU quota on the spawn form; a wrong password, a user removed from the
provider and a tampered ``state`` each end on a page that says what happened.

Screenshots go to test-artifacts/ as auth-oidc-*.png (docs/authentication.md shows them).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import pytest
from playwright.sync_api import expect

from gputest import gpu_hub_config
from hub_config.oidc import STATE_REFUSED
from hubtest import new_password
from oidctest import provider_fixture

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 180_000
PASSWORDS = {"ann": new_password(), "bea": new_password(), "cid": new_password()}
PROFILES = [
    {"name": "cpu", "display_name": "CPU only", "default": True},
    {"name": "gpu", "display_name": "One GPU", "gpus": 1, "groups": ["ml-team"]},
]


provider = provider_fixture(
    {
        name: {"password": PASSWORDS[name], "groups": ["ml-team"], "name": name.title()}
        for name in PASSWORDS
    }
)


@pytest.fixture(scope="module")
def hub(hub_factory, provider, tmp_path_factory):
    secret_file = tmp_path_factory.mktemp("secret") / "client-secret"
    config = {
        "auth": provider.auth_section(
            secret_file, allowed_groups=["ml-team"], login_service="Example SSO"
        ),
        **gpu_hub_config(PROFILES, count=2, quotas={"ml-team": 2}, default_quota=0),
        "volumes": {"groups": [{"group": "ml-team"}]},
        "culling": {"enabled": False},
    }
    return provider.start_with_hub(hub_factory, config, "e2eoidc")


def to_provider(page, hub):
    """The hub's log-in page, its one button, and the provider's form."""
    page.goto(f"{hub.url}/hub/login")
    button = page.get_by_role("button", name="Sign in with Example SSO")
    expect(button).to_be_visible()
    return button


def provider_sign_in(page, name: str, password: str) -> None:
    expect(page.get_by_role("heading", name=re.compile("Sign in to continue"))).to_be_visible()
    page.fill("#username", name)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_sign_in_with_the_provider_and_land_in_jupyterlab(hub, provider, browser, artifacts):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    button = to_provider(page, hub)
    page.screenshot(path=artifacts / "auth-oidc-login.png")
    button.click()
    # the provider's own page, on its own address
    page.wait_for_url(re.compile(rf"^{re.escape(provider.issuer)}/interaction/"))
    page.fill("#username", "ann")
    page.screenshot(path=artifacts / "auth-oidc-provider.png")
    provider_sign_in(page, "ann", PASSWORDS["ann"])

    # back at the hub: the spawn form shows ml-team's GPU profile and quota
    page.wait_for_url(re.compile(r".*/hub/spawn.*"), timeout=60_000)
    expect(page.locator("#profile-gpu")).to_be_visible()
    expect(page.locator(".dlhub-gpu-note").first).to_contain_text("your quota of 2")
    page.screenshot(path=artifacts / "auth-oidc-spawn.png", full_page=True)
    page.locator("#profile-cpu").check()
    page.locator("form [type=submit]").first.click()

    # JupyterLab, with the group's folder in the file browser
    page.wait_for_url(re.compile(r".*/user/ann/lab.*"), timeout=SPAWN_TIMEOUT_MS)
    page.locator(".jp-Launcher").first.wait_for(timeout=SPAWN_TIMEOUT_MS)
    listing = page.locator(".jp-DirListing-content")
    listing.get_by_text("groups", exact=True).dblclick()
    expect(listing.get_by_text("ml-team", exact=True)).to_be_visible(timeout=30_000)
    page.screenshot(path=artifacts / "auth-oidc-lab.png")


def test_a_wrong_password_stays_on_the_providers_page(hub, browser, artifacts):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    to_provider(page, hub).click()
    provider_sign_in(page, "bea", "not-" + PASSWORDS["bea"])
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password.")
    assert not page.url.startswith(hub.url)
    page.screenshot(path=artifacts / "auth-oidc-wrong-password.png")


def test_a_removed_user_is_sent_away_at_start_and_refused_at_sign_in(
    hub, provider, browser, artifacts
):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    to_provider(page, hub).click()
    provider_sign_in(page, "cid", PASSWORDS["cid"])
    page.wait_for_url(re.compile(r".*/hub/spawn.*"), timeout=60_000)

    provider.remove_user("cid")
    # the start asks the provider first: JupyterHub's page says to log in again
    page.locator("#profile-cpu").check()
    page.locator("form [type=submit]").first.click()
    page.wait_for_load_state()
    expect(page.locator(".spawn-error-msg")).to_contain_text(
        "auth has expired for cid, login again"
    )
    page.screenshot(path=artifacts / "auth-oidc-revoked.png")
    # logged out: the hub's log-in page, and the provider's page does not let them in
    to_provider(page, hub).click()
    provider_sign_in(page, "cid", PASSWORDS["cid"])
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password.")


def test_a_tampered_state_ends_on_a_clear_page(hub, browser, artifacts):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    callbacks: list[str] = []

    def hold(route):
        # the provider's way back to the hub is followed here, not by the page, and held:
        # the page then opens it with another state, as a forged link would
        r = route.fetch(max_redirects=0)
        while r.status in (302, 303) and "/oauth_callback" not in r.headers["location"]:
            r = context.request.get(urljoin(r.url, r.headers["location"]), max_redirects=0)
        callbacks.append(r.headers.get("location", ""))
        route.fulfill(status=200, content_type="text/html", body="<p>held</p>")

    page.route(re.compile(r".*/interaction/[^/]+/login$"), hold)
    to_provider(page, hub).click()
    provider_sign_in(page, "bea", PASSWORDS["bea"])
    assert callbacks and "/hub/oauth_callback?" in callbacks[0], callbacks
    url = urlparse(callbacks[0])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    query["state"] = "eyJzdGF0ZV9pZCI6ICJmb3JnZWQifQ"
    response = page.goto(url._replace(query=urlencode(query)).geturl())
    assert response.status == 400
    expect(page.locator("body")).to_contain_text(STATE_REFUSED)
    page.screenshot(path=artifacts / "auth-oidc-tampered-state.png")
    # not logged in: the hub's pages send the browser to the log-in page
    page.goto(f"{hub.url}/hub/home")
    expect(page.get_by_role("button", name="Sign in with Example SSO")).to_be_visible()
