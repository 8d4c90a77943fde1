"""The Chromium the browser tests launch, and the hub's sign-up and log-in forms driven in
a Playwright page."""

from __future__ import annotations

import os

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


def sign_up(page, hub, name: str, password: str) -> str:
    """Sign up at /hub/signup; return the text of the page's message."""
    page.goto(f"{hub.url}/hub/signup")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.fill("#password_confirmation_input", password)
    page.click("#signup_submit, form [type=submit]")
    page.wait_for_load_state()
    return page.locator(".alert").inner_text()


def first_admin(page, hub, name: str, password: str) -> str:
    """Make the admin account on the one-time setup page (the link `dlhub up` prints);
    return the text of the page's message."""
    page.goto(f"{hub.url}/hub/first-admin#token={hub.setup_token()}")
    page.select_option("#username_input", name)
    page.fill("#password_input", password)
    page.fill("#password_confirmation_input", password)
    page.click("#first_admin_submit")
    page.wait_for_load_state()
    return page.locator(".alert").inner_text()


def log_in(page, hub, name: str, password: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit, form [type=submit]")
