"""A new user's first visit, in a real browser: sign up, approval, JupyterLab, TensorFlow."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from browsertest import first_admin, log_in, sign_up
from hubtest import REPO, new_password

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 180_000


def tensorflow_version() -> str:
    lock = (REPO / "images" / "singleuser" / "requirements.txt").read_text()
    return re.search(r"^tensorflow[-_]cpu==(\S+)$", lock, re.M).group(1)


class UrlLog:
    """Every URL a browser context requests, to check no token ever travels in one."""

    def __init__(self):
        self.urls: list[str] = []

    def attach(self, context):
        context.on("request", lambda request: self.urls.append(request.url))
        context.on("websocket", lambda ws: self.urls.append(ws.url))
        return context


@pytest.fixture(scope="module")
def hub(hub_factory):
    return hub_factory({"culling": {"enabled": False}}, name="e2e")


def run_first_cell(page, attempts: int = 3):
    """Shift+Enter in the first cell until JupyterLab shows it queued or run.

    A keypress that lands while JupyterLab is still connecting the new notebook to its
    kernel is dropped (the prompt stays ``[ ]:``); a person would press again, and so
    does this.
    """
    prompt = page.locator(".jp-NotebookPanel .jp-Cell .jp-InputPrompt").first
    for _ in range(attempts):
        page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        try:
            expect(prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=15_000)
            return
        except AssertionError:
            continue
    raise AssertionError(f"the cell did not run after {attempts} tries")


def test_sign_up_approve_log_in_and_run_tensorflow(hub, browser, artifacts):
    urls = UrlLog()
    admin_pw, alice_pw = new_password(), new_password()

    # the first admin's account, on the one-time setup page `dlhub up` links to
    admin = urls.attach(browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    message = first_admin(admin, hub, "admin", admin_pw)
    assert "is ready" in message

    alice = urls.attach(browser.new_context()).new_page()
    message = sign_up(alice, hub, "alice", alice_pw)
    assert "sent to the admin" in message

    # not approved yet: the login page says so
    log_in(alice, hub, "alice", alice_pw)
    alice.wait_for_load_state()
    assert "has not been authorized" in alice.content()

    # the admin lands on the hub's home page, whose navigation counts the pending
    # sign-up; one click leads to it, one more approves alice
    log_in(admin, hub, "admin", admin_pw)
    admin.wait_for_url(re.compile(r".*/hub/home$"))
    signups = admin.locator("#dlhub-signups")
    expect(signups).to_contain_text("1 pending")
    signups.click()
    admin.wait_for_url(re.compile(r".*/hub/authorize$"))
    row = admin.locator("#pending-accounts tr", has_text="alice")
    expect(row.get_by_role("button", name="Approve")).to_be_visible()
    admin.screenshot(path=artifacts / "authorize-pending.png", full_page=True)
    row.get_by_role("button", name="Approve").click()
    admin.wait_for_url(re.compile(r".*/hub/authorize$"))
    # approved, not logged in yet: listed as such, and nothing is pending any more
    never = admin.locator("#never-logged-in tr", has_text="alice")
    expect(never.get_by_role("button", name="Revoke approval")).to_be_visible()
    expect(admin.locator("#dlhub-signups")).not_to_contain_text("pending")
    admin.screenshot(path=artifacts / "authorize.png", full_page=True)

    # alice logs in and lands in JupyterLab
    log_in(alice, hub, "alice", alice_pw)
    alice.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=SPAWN_TIMEOUT_MS)
    alice.locator(".jp-Launcher").first.wait_for(timeout=SPAWN_TIMEOUT_MS)

    # a new notebook from the launcher, one cell, run it
    alice.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
    alice.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.wait_for(timeout=60_000)
    alice.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    alice.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=60_000)
    cell = alice.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    cell.click()
    cell.type("import tensorflow as tf; print(tf.__version__)")
    assert "print(tf.__version__)" in cell.inner_text()
    run_first_cell(alice)
    stdout = alice.locator(
        '.jp-NotebookPanel .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]'
    ).first
    try:
        stdout.wait_for(timeout=180_000)
    finally:
        alice.screenshot(path=artifacts / "jupyterlab-tensorflow.png")
    assert stdout.inner_text().strip() == tensorflow_version()

    # the admin sees alice's running server in the admin panel
    admin.goto(f"{hub.url}/hub/admin")
    admin.get_by_text("alice").first.wait_for(timeout=30_000)
    admin.screenshot(path=artifacts / "admin-panel.png", full_page=True)

    # no token ever travelled in a URL (query string or fragment)
    for url in urls.urls:
        parts = urlsplit(url)
        params = parse_qs(parts.query) | parse_qs(parts.fragment)
        assert not {"token", "access_token", "api_token"} & set(params), url
