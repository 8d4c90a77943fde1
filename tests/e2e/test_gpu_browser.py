"""GPU scheduling seen in a real browser: the warning in JupyterLab before a GPU is taken
back, and the admin's "who holds which GPU" page reached from the hub's Services menu,
with the same early warning highlighted."""

from __future__ import annotations

import re

import pytest

from browsertest import first_admin, log_in
from gputest import gpu_hub_config
from hubtest import new_password

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def hub(hub_factory):
    profiles = [{"name": "gpu", "display_name": "One GPU", "gpus": 1, "gpu_idle_timeout": 3600}]
    # the lease is within its warning time as soon as it is granted
    config = gpu_hub_config(profiles, count=1, warn_before=7200)
    return hub_factory({**config, "culling": {"enabled": False}}, name="e2egpu")


def test_jupyterlab_warns_and_the_admin_sees_the_gpu(hub, browser, artifacts):
    password = new_password()
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    first_admin(page, hub, "admin", password)
    log_in(page, hub, "admin", password)

    # the GPU lease is granted at once; JupyterLab opens and shows the warning
    page.wait_for_url(re.compile(r".*/user/admin/lab.*"), timeout=SPAWN_TIMEOUT_MS)
    page.locator(".jp-Launcher").first.wait_for(timeout=SPAWN_TIMEOUT_MS)
    toast = page.get_by_text(re.compile(r"server will be stopped at \d\d:\d\d UTC"))
    toast.first.wait_for(timeout=60_000)
    page.screenshot(path=artifacts / "jupyterlab-gpu-warning.png")

    # the hub's Services menu leads to the scheduler's page
    page.goto(f"{hub.url}/hub/home")
    page.get_by_role("button", name="Services").click()
    page.get_by_role("link", name="gpu-scheduler").click()
    page.wait_for_url(re.compile(r".*/services/gpu-scheduler/$"))
    row = page.locator("#leases tr.lease", has_text="admin")
    row.wait_for(timeout=30_000)
    assert "A100 #0" in row.inner_text() and "GPU-0" in row.inner_text()
    # the idle reclaim is within warn_before: its time is highlighted, as in JupyterLab
    warning = row.locator("span.warn")
    assert warning.count() == 1 and "(idle)" in warning.inner_text()
    assert warning.evaluate("e => getComputedStyle(e).fontWeight") == "600"
    page.screenshot(path=artifacts / "gpu-admin-page.png", full_page=True)

    # reclaim from the page: the server stops and the GPU is free again
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Reclaim").click()
    page.wait_for_url(re.compile(r".*/services/gpu-scheduler/$"))
    page.get_by_text("No GPU is leased.").wait_for(timeout=30_000)
    assert "1 of 1 free" in page.content()
