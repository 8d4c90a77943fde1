"""An admin's day in a real browser: a roster imported with `dlhub roster import`, the
groups in the admin panel, a profile only a group sees, and the group's shared folder.

The screenshots go to test-artifacts/ (docs/admin-guide.md shows them).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from browsertest import log_in, sign_up
from hubtest import new_password

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 180_000
DLHUB = Path(sys.executable).parent / "dlhub"
ROSTER = """username,groups,admin
alice,physics;course,false
bob,physics,false
carol,,false
"""


@pytest.fixture(scope="module")
def hub(hub_factory):
    config = {
        "volumes": {"groups": [{"group": "physics"}, {"group": "course", "others": "read"}]},
        "profiles": [
            {"name": "cpu", "display_name": "CPU", "default": True},
            {
                "name": "physics-big",
                "display_name": "Physics: 8 GB",
                "description": "More memory for the physics group's simulations.",
                "mem_limit": "8G",
                "groups": ["physics"],
            },
        ],
        "culling": {"enabled": False},
    }
    return hub_factory(config, name="e2eadmin")


def test_roster_groups_and_group_profiles_in_the_browser(hub, browser, artifacts, tmp_path):
    admin_pw = new_password()
    token = hub.admin("admin", admin_pw).new_token("roster")
    roster = tmp_path / "course.csv"
    roster.write_text(ROSTER)
    env = {**os.environ, "DLHUB_API_TOKEN": token, "DLHUB_CONFIG": str(hub.config_file)}
    done = subprocess.run(
        [str(DLHUB), "roster", "import", str(roster)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (artifacts / "roster-import.txt").write_text(done.stdout)

    admin = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    log_in(admin, hub, "admin", admin_pw)
    admin.wait_for_url(re.compile(r".*/(hub/home|hub/spawn.*|user/admin/.*)$"))
    admin.goto(f"{hub.url}/hub/admin")
    for name in ("alice", "bob", "carol"):
        admin.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    admin.screenshot(path=artifacts / "admin-users.png", full_page=True)
    admin.goto(f"{hub.url}/hub/admin#/groups")
    admin.get_by_text("physics").first.wait_for(timeout=30_000)
    admin.screenshot(path=artifacts / "admin-groups.png", full_page=True)
    admin.get_by_text("physics").first.click()
    admin.get_by_text("bob").first.wait_for(timeout=30_000)
    admin.screenshot(path=artifacts / "admin-group-physics.png", full_page=True)

    # alice was on the roster: her sign-up is approved at once; the form offers her
    # group's profile
    alice = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    assert "successful" in sign_up(alice, hub, "alice", new_password() + "a").lower()
    alice_pw = new_password()
    alice.context.clear_cookies()
    sign_up(alice, hub, "alice2", alice_pw)  # an unknown name waits for approval
    log_in(alice, hub, "alice2", alice_pw)
    alice.get_by_text("has not been authorized").first.wait_for(timeout=30_000)

    carol = browser.new_context().new_page()
    carol_pw = new_password()
    assert "successful" in sign_up(carol, hub, "carol", carol_pw).lower()
    log_in(carol, hub, "carol", carol_pw)
    carol.wait_for_url(re.compile(r".*/hub/spawn.*|.*/user/carol/.*"), timeout=SPAWN_TIMEOUT_MS)
    if "/hub/spawn" in carol.url:
        assert "Physics: 8 GB" not in carol.content()

    bob = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    bob_pw = new_password()
    sign_up(bob, hub, "bob", bob_pw)
    log_in(bob, hub, "bob", bob_pw)
    bob.wait_for_url(re.compile(r".*/hub/spawn.*"))
    bob.get_by_text("Physics: 8 GB").wait_for()
    bob.screenshot(path=artifacts / "spawn-form-groups.png", full_page=True)
    bob.get_by_text("Physics: 8 GB").click()
    bob.locator("form [type=submit]").first.click()
    bob.wait_for_url(re.compile(r".*/user/bob/lab.*"), timeout=SPAWN_TIMEOUT_MS)
    # the file browser shows the shared folders: datasets, shared, groups/
    listing = bob.locator(".jp-DirListing-content")
    for folder in ("datasets", "shared", "groups"):
        listing.get_by_text(folder, exact=True).wait_for(timeout=60_000)
    listing.get_by_text("groups", exact=True).dblclick()
    listing.get_by_text("physics", exact=True).wait_for(timeout=30_000)
    listing.get_by_text("course", exact=True).wait_for(timeout=30_000)
    bob.screenshot(path=artifacts / "jupyterlab-shared-folders.png")
