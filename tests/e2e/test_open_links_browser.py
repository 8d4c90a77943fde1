""" "Open in dlhub" links in a real Chromium, against a git repository the test serves on
loopback with ``git daemon``: the link logs the user in, starts their server with the
link's profile, clones the repository into their home and opens the notebook in
JupyterLab; a later visit pulls the teacher's changes and keeps the user's own edits; the
builder page writes a link that works.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import requests
from playwright.sync_api import expect

from hubtest import (
    REPO,
    free_port,
    new_password,
    part_missing,
    run_ok,
    stop_server,
    token_api,
    wait_for,
)

pytestmark = pytest.mark.e2e

SPAWN_TIMEOUT_MS = 180_000

PROFILES = [
    {"name": "cpu", "display_name": "CPU", "default": True},
    {"name": "small", "display_name": "Small CPU", "cpu_limit": 1, "mem_limit": "2G"},
]


#: the user image's Python kernel, as a notebook saved in JupyterLab names it
KERNEL = {
    "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
}


def notebook(*lines: str) -> str:
    """A notebook of one code cell holding ``lines``."""
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "id": "c1",
        "metadata": {},
        "outputs": [],
        "source": "\n".join(lines),
    }
    return json.dumps(
        {"cells": [cell], "metadata": KERNEL, "nbformat": 4, "nbformat_minor": 5}, indent=1
    )


class GitServer:
    """A bare repository ``course.git`` served by ``git daemon`` on 127.0.0.1, and a
    working copy the test commits to and pushes from, as a teacher would."""

    def __init__(self, root: Path):
        if shutil.which("git") is None or not Path("/usr/lib/git-core/git-daemon").exists():
            part_missing("needs git and git-daemon (the git package)")
        self.root = root
        self.base = root / "served"
        self.work = root / "work"
        self.port = free_port()
        self.url = f"git://127.0.0.1:{self.port}/course.git"
        self.base.mkdir(parents=True)
        self.git("init", "--bare", "-b", "main", str(self.base / "course.git"))
        self.git("init", "-b", "main", str(self.work))
        self.proc = subprocess.Popen(
            [
                "git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1",
                f"--port={self.port}", f"--base-path={self.base}", str(self.base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answers, 20, what="git daemon to serve the repository")

    def git(self, *args: str, cwd: Path | None = None) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Teacher",
            "GIT_AUTHOR_EMAIL": "teacher@example.org",
            "GIT_COMMITTER_NAME": "Teacher",
            "GIT_COMMITTER_EMAIL": "teacher@example.org",
        }
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def answers(self) -> bool:
        done = subprocess.run(["git", "ls-remote", self.url], capture_output=True, timeout=10)
        return done.returncode == 0

    def publish(self, files: dict[str, str], message: str) -> None:
        """Commit ``files`` (path: text) and push them to the served repository."""
        for path, text in files.items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A", cwd=self.work)
        self.git("commit", "-m", message, cwd=self.work)
        self.git("push", str(self.base / "course.git"), "main", cwd=self.work)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


@pytest.fixture(scope="module")
def git_server(tmp_path_factory):
    server = GitServer(tmp_path_factory.mktemp("git"))
    server.publish(
        {
            "lessons/intro.ipynb": notebook("print('hello from the course')"),
            "notes.md": "Read the intro first.\n",
        },
        "the course",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hub(hub_factory):
    return hub_factory({"profiles": PROFILES, "culling": {"enabled": False}}, name="links")


@pytest.fixture(scope="module")
def alice(hub):
    """alice's password and an API token of hers, once an admin approved her sign-up; her
    server is stopped at the end (a hub that stops leaves its servers running)."""
    password = new_password()
    admin = hub.admin()
    hub.session().signup("alice", password)
    admin.approve("alice")
    session = hub.session()
    session.login("alice", password)
    token = session.new_token("open links")
    yield {"password": password, "token": token}
    if "" in token_api(hub.url, token, "GET", "/hub/api/users/alice").json()["servers"]:
        stop_server(hub.url, token, "alice")


@pytest.fixture(scope="module")
def page(browser, alice):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def link(hub, **values) -> str:
    return f"{hub.url}/hub/open?{urlencode(values)}"


def open_notebook(page, path: str):
    """Wait until JupyterLab shows the notebook ``path`` (relative to the home)."""
    page.wait_for_url(re.compile(rf".*/user/alice/lab/tree/{re.escape(path)}$"), timeout=60_000)
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    try:
        expect(tab).to_contain_text(Path(path).name, timeout=SPAWN_TIMEOUT_MS)
    finally:
        page.screenshot(path=REPO / "test-artifacts" / "open-link-last.png")
    return page.locator(".jp-NotebookPanel:visible .jp-Cell .cm-content").first


def test_a_link_logs_in_starts_the_profile_and_opens_the_notebook(
    hub, git_server, page, alice, artifacts
):
    url = link(
        hub, repo=git_server.url, branch="main", file="lessons/intro.ipynb", profile="small"
    )
    page.goto(url)
    # not logged in: the log-in page, which comes back to the link
    page.wait_for_url(re.compile(r".*/hub/login\?next=.*open.*"))
    page.screenshot(path=artifacts / "open-link-login.png")
    page.fill("#username_input", "alice")
    page.fill("#password_input", alice["password"])
    page.click("#login_submit, form [type=submit]")
    cell = open_notebook(page, "course/lessons/intro.ipynb")
    expect(cell).to_contain_text("hello from the course", timeout=60_000)
    page.screenshot(path=artifacts / "open-link-notebook.png")
    # the clone is in alice's home, and the server runs the link's profile
    home = hub.home("alice")
    assert (home / "course" / "lessons" / "intro.ipynb").is_file()
    assert (home / "course" / ".git").is_dir()
    r = token_api(hub.url, alice["token"], "GET", "/hub/api/users/alice")
    assert r.json()["servers"][""]["user_options"] == {"profile": "small"}


def test_a_second_visit_pulls_the_changes_and_keeps_the_users_edits(
    hub, git_server, page, alice, artifacts
):
    home = hub.home("alice")
    # alice changes the notes in JupyterLab's file (the server writes as her account)
    notes = home / "course" / "notes.md"
    token = alice["token"]
    run_ok(hub.url, token, "alice", f"open({str(notes)!r}, 'w').write('My own notes.\\n')")
    # the teacher changes the same line, and adds a lesson
    git_server.publish(
        {
            "notes.md": "Read the intro first, then lesson two.\n",
            "lessons/two.ipynb": notebook("print('lesson two')"),
        },
        "lesson two",
    )
    page.goto(link(hub, repo=git_server.url, branch="main", file="lessons/two.ipynb"))
    cell = open_notebook(page, "course/lessons/two.ipynb")
    expect(cell).to_contain_text("lesson two", timeout=60_000)
    page.screenshot(path=artifacts / "open-link-second-visit.png")
    assert (home / "course" / "lessons" / "two.ipynb").is_file()
    assert notes.read_text() == "My own notes.\n"
    # still the one server alice had: the link reused it
    r = token_api(hub.url, token, "GET", "/hub/api/users/alice")
    assert r.json()["servers"][""]["user_options"] == {"profile": "small"}


def test_the_builder_page_makes_a_link_that_works(hub, git_server, page, alice, artifacts):
    git_server.publish({"lessons/three.ipynb": notebook("print('lesson three')")}, "three")
    page.goto(f"{hub.url}/hub/open/build")
    page.fill("#repo", git_server.url)
    page.fill("#branch", "main")
    page.fill("#file", "lessons/three.ipynb")
    page.select_option("#profile", "small")
    page.click("#dlhub-open-make")
    made = page.locator("#dlhub-open-url")
    made.wait_for()
    url = made.input_value()
    assert url.startswith(f"{hub.url}/hub/open?")
    markdown = page.locator("#dlhub-open-markdown").input_value()
    assert markdown == f"[![Open in dlhub]({hub.url}/hub/open/badge.svg)]({url})"
    assert f'href="{url.replace("&", "&amp;")}"' in page.locator("#dlhub-open-html").input_value()
    badge = page.locator("#dlhub-open-link img")
    expect(badge).to_be_visible()
    assert page.evaluate("img => img.naturalWidth", badge.element_handle()) > 0
    page.screenshot(path=artifacts / "open-link-builder.png", full_page=True)
    page.goto(url)
    cell = open_notebook(page, "course/lessons/three.ipynb")
    expect(cell).to_contain_text("lesson three", timeout=60_000)


def test_bad_links_are_a_clear_400_page(hub, git_server, page, alice, artifacts):
    for values, said in [
        ({"repo": "file:///etc/passwd"}, "http://, https:// or git://"),
        ({"repo": "https://user:pw@example.org/x.git"}, "user name or password"),
        ({"repo": git_server.url, "branch": "--upload-pack=touch /tmp/x"}, "branch"),
        ({"repo": git_server.url, "file": "../../etc/passwd"}, "inside the repository"),
        ({"repo": git_server.url, "profile": "gpu-a100"}, "yours are: cpu, small"),
        ({}, "names no repository"),
    ]:
        response = page.goto(link(hub, **values))
        assert response.status == 400, (values, response.status)
        expect(page.locator("body")).to_contain_text(said)
    page.screenshot(path=artifacts / "open-link-bad.png")
    # the badge is public: READMEs show it to anyone
    r = requests.get(f"{hub.url}/hub/open/badge.svg", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("image/svg+xml")
    assert "Open in" in r.text


def test_a_link_on_another_site_shows_the_form_and_her_start_opens_the_notebook(
    hub, git_server, page, alice, artifacts
):
    """Clicked on a page of another site, the link leads to the spawn form with its profile
    chosen, not to a start: only her press of Start starts the server, then the notebook
    opens as before."""
    stop_server(hub.url, alice["token"], "alice")
    url = link(
        hub, repo=git_server.url, branch="main", file="lessons/intro.ipynb", profile="small"
    )
    elsewhere = f'<p>Course page</p><a id="go" href="{html.escape(url)}">Open in dlhub</a>'
    page.goto("data:text/html," + quote(elsewhere))
    page.click("#go")
    page.wait_for_url(re.compile(r".*/hub/spawn/alice\?.*"))
    expect(page.locator('input[name="profile"][value="small"]')).to_be_checked()
    page.screenshot(path=artifacts / "open-link-from-another-site.png")
    r = token_api(hub.url, alice["token"], "GET", "/hub/api/users/alice")
    assert "" not in r.json()["servers"], r.json()["servers"]
    page.click("#spawn_form [type=submit]")
    cell = open_notebook(page, "course/lessons/intro.ipynb")
    expect(cell).to_contain_text("hello from the course", timeout=60_000)
    r = token_api(hub.url, alice["token"], "GET", "/hub/api/users/alice")
    assert r.json()["servers"][""]["user_options"] == {"profile": "small"}
