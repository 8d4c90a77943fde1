""" "Open in dlhub" links with a GPU profile, over HTTP: the link's start joins the GPU queue
like any start (the progress shows the place), and once a GPU is free the server starts
and the spawn page goes on to the pull. The browser journey is
tests/e2e/test_open_links_browser.py.
"""

import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from gputest import SchedulerClient, gpu_hub_config
from hubtest import start_server, stop_server, token_api, wait_for

pytestmark = pytest.mark.integration

PROFILES = [
    {"name": "cpu", "display_name": "CPU only", "default": True},
    {"name": "gpu", "display_name": "One GPU", "gpus": 1},
]
REPO = "https://git.example.org/team/course.git"


@pytest.fixture(scope="module")
def hub(hub_factory):
    config = {**gpu_hub_config(PROFILES, count=1), "culling": {"enabled": False}}
    return hub_factory(config, name="links-gpu")


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


def progress_until(hub, token, user, text, timeout=60) -> list[str]:
    url = f"{hub.url}/hub/api/users/{user}/server/progress"
    seen = []
    with requests.get(
        url, headers={"Authorization": f"token {token}"}, stream=True, timeout=timeout
    ) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                seen.append(json.loads(line[5:]).get("message", ""))
                if text in seen[-1]:
                    return seen
    raise AssertionError(f"no progress message with {text!r}; saw {seen}")


def test_a_gpu_link_waits_in_the_queue_then_goes_on_to_the_pull(hub, admin):
    admin_token = admin.new_token("admin")
    bob = hub.approved_user(admin, "bob")
    bob_token = bob.new_token("bob")
    alice = hub.approved_user(admin, "alice")
    alice_token = alice.new_token("alice")
    start_server(hub.url, bob_token, "bob", {"profile": "gpu"})  # the only GPU
    try:
        link = f"{hub.url}/hub/open?" + urlencode(
            {"repo": REPO, "file": "intro.ipynb", "profile": "gpu"}
        )
        r = alice.get(link, allow_redirects=False)
        assert r.status_code == 302
        spawn = urlsplit(r.headers["Location"])
        assert spawn.path == "/hub/spawn/alice"
        query = parse_qs(spawn.query)
        assert query["opt-profile"] == ["gpu"]
        pull = urlsplit(query["next"][0])
        assert pull.path == "/user/alice/git-pull"
        assert parse_qs(pull.query)["urlpath"] == ["lab/tree/course/intro.ipynb"]
        # the spawn page starts the server with the link's profile: it waits for the GPU
        r = alice.get(hub.url + r.headers["Location"], allow_redirects=False)
        assert r.status_code == 302 and "/hub/spawn-pending/alice" in r.headers["Location"]
        pending = r.headers["Location"]
        assert parse_qs(urlsplit(pending).query)["next"] == query["next"]
        seen = progress_until(hub, alice_token, "alice", "Waiting for a GPU: position 1")
        assert any("about" in m for m in seen)
        waiting = SchedulerClient(hub).state(admin_token)["waiting"]
        assert [(w["user"], w["server"]) for w in waiting] == [("alice", "")]
    finally:
        stop_server(hub.url, bob_token, "bob")

    def alice_ready():
        model = token_api(hub.url, alice_token, "GET", "/hub/api/users/alice").json()
        return model["servers"].get("", {}).get("ready")

    wait_for(alice_ready, 90, what="alice's server to start on the freed GPU")
    # the pending page now sends her on to the pull
    r = alice.get(hub.url + pending, allow_redirects=False)
    assert r.status_code == 302
    assert urlsplit(r.headers["Location"]).path == "/user/alice/git-pull"
    model = token_api(hub.url, alice_token, "GET", "/hub/api/users/alice").json()
    assert model["servers"][""]["user_options"] == {"profile": "gpu"}
    (lease,) = SchedulerClient(hub).leases(admin_token)
    assert lease["user"] == "alice"
    stop_server(hub.url, alice_token, "alice")


def test_a_link_for_a_profile_she_cannot_start_is_a_clear_400(hub, admin):
    carol = hub.approved_user(admin, "carol")
    link = f"{hub.url}/hub/open?" + urlencode({"repo": REPO, "profile": "a100-large"})
    r = carol.get(link, allow_redirects=False)
    assert r.status_code == 400
    assert "yours are: cpu, gpu" in r.text
    model = carol.api("GET", "/users/carol").json()
    assert model["servers"] == {}


@pytest.fixture(scope="module")
def dave(hub, admin):
    return hub.approved_user(admin, "dave")


@pytest.mark.parametrize(
    "values",
    [
        {"repo": REPO, "file": "//evil.example/x.ipynb"},
        {"repo": REPO, "file": "%2e%2e/%2e%2e/hub/admin"},
        {"repo": REPO, "file": "lessons/\u00e9t\u00e9 \u202e.ipynb", "profile": "cpu"},
        {"repo": "https://evil.example/%2e%2e", "branch": "main"},
        {"repo": REPO, "next": "https://evil.example/", "urlpath": "//evil.example"},
    ],
)
def test_a_link_leads_only_to_her_own_server_on_this_hub(hub, dave, values):
    """Whatever a link holds, the hub sends the person to their own spawn page or server,
    and from there to nbgitpuller on their own server opening a path of JupyterLab."""
    r = dave.get(f"{hub.url}/hub/open?" + urlencode(values), allow_redirects=False)
    assert r.status_code == 302, (values, r.status_code, r.text[:300])
    where = urlsplit(r.headers["Location"])
    assert not where.netloc and where.path == "/hub/spawn/dave", r.headers["Location"]
    (on,) = parse_qs(where.query)["next"]
    pull = urlsplit(on)
    assert not pull.netloc and pull.path == "/user/dave/git-pull", on
    (urlpath,) = parse_qs(pull.query)["urlpath"]
    assert urlpath.startswith("lab/tree/") and "//" not in urlpath and ".." not in urlpath
    assert parse_qs(pull.query)["repo"] == [values["repo"]]
    # nothing was started by the redirect itself
    assert dave.api("GET", "/users/dave").json()["servers"] == {}


def test_a_link_asks_a_visitor_to_log_in_first_and_bad_values_start_nothing(hub, admin):
    link = f"{hub.url}/hub/open?" + urlencode({"repo": REPO, "profile": "gpu"})
    r = requests.get(link, allow_redirects=False, timeout=30)
    assert r.status_code == 302
    login = urlsplit(r.headers["Location"])
    assert login.path == "/hub/login" and parse_qs(login.query)["next"][0].startswith("/hub/open?")
    erin = hub.approved_user(admin, "erin")
    for values in (
        {"repo": "x" * 10_000},
        {"repo": "ext::sh -c touch% /tmp/pwned"},
        {"repo": "-uhttps://example.org/x"},
        {"repo": "ssh://git@example.org/x.git"},
        {"repo": REPO, "branch": "-b"},
        {"repo": REPO, "branch": "a..b"},
        {"repo": REPO, "file": "a/../../b"},
        {"repo": REPO, "profile": "gpu" * 30},
    ):
        r = erin.get(f"{hub.url}/hub/open?" + urlencode(values), allow_redirects=False)
        assert r.status_code == 400, (values, r.status_code)
    assert erin.api("GET", "/users/erin").json()["servers"] == {}


@pytest.mark.parametrize(
    "values, status",
    [
        ({"repo": REPO, "file": '"><script>alert(1)</script>.ipynb'}, 200),
        ({"repo": '"><svg onload=alert(1)>', "branch": "<script>alert(2)</script>"}, 400),
        ({"repo": "javascript:alert(3)//", "file": "x'><img src=x onerror=alert(4)>"}, 400),
    ],
)
def test_the_builder_page_shows_hostile_values_as_text(hub, dave, values, status):
    r = dave.get(f"{hub.url}/hub/open/build?" + urlencode(values), allow_redirects=False)
    assert r.status_code == status, r.text[:300]
    for raw in ("<script>alert", "<svg onload", "<img src=x"):
        assert raw not in r.text, raw
    if status == 200:  # the link carries the value, encoded
        assert "%22%3E%3Cscript%3Ealert%281%29" in r.text
    badge = requests.get(f"{hub.url}/hub/open/badge.svg?x=<script>", timeout=30)
    assert "<script" not in badge.text and badge.headers["Content-Type"].startswith("image/svg")


def chosen_profile(page: str) -> str:
    """The profile the spawn form has chosen (its checked radio button)."""
    (name,) = re.findall(r'value="([a-z0-9-]+)" checked', page)
    return name


def test_a_link_from_another_site_shows_the_form_and_only_her_press_starts(hub, admin):
    """A page elsewhere cannot make someone start a (GPU) server: reached from another
    site, the spawn page shows the form with the link's profile chosen; her press of Start
    (the form's POST with its XSRF token) starts it."""
    fay = hub.approved_user(admin, "fay")
    away = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    link = f"{hub.url}/hub/open?" + urlencode({"repo": REPO, "profile": "gpu"})
    r = fay.get(link, headers=away)  # the link, then the hub's redirect to the spawn page
    assert r.status_code == 200 and urlsplit(r.url).path == "/hub/spawn/fay", r.url
    assert chosen_profile(r.text) == "gpu"
    r = fay.get(f"{hub.url}/hub/spawn?opt-profile=gpu", headers={"Sec-Fetch-Site": "same-site"})
    assert r.status_code == 200 and chosen_profile(r.text) == "gpu"
    assert fay.api("GET", "/users/fay").json()["servers"] == {}
    # her press of Start on that form, for the CPU profile
    r = fay.get(f"{hub.url}/hub/spawn/fay?opt-profile=cpu&next=/hub/home", headers=away)
    assert chosen_profile(r.text) == "cpu"
    r = fay.post_form("/hub/spawn/fay?next=/hub/home", {"profile": "cpu"}, allow_redirects=False)
    assert r.status_code == 302, r.text[:300]
    try:
        wait_for(
            lambda: fay.api("GET", "/users/fay").json()["servers"].get("", {}).get("ready"),
            90,
            what="fay's server to start",
        )
        options = fay.api("GET", "/users/fay").json()["servers"][""]["user_options"]
        assert options == {"profile": "cpu"}
    finally:
        fay.api("DELETE", "/users/fay/server")
        wait_for(lambda: not fay.api("GET", "/users/fay").json()["servers"], 60, what="stop")


def test_from_the_hubs_own_pages_the_link_starts_the_profile(hub, admin):
    """The same spawn page reached from the hub's own pages (or typed) starts the server
    with the query's profile, as JupyterHub does."""
    gus = hub.approved_user(admin, "gus")
    r = gus.get(
        f"{hub.url}/hub/spawn/gus?opt-profile=cpu",
        headers={"Sec-Fetch-Site": "same-origin"},
        allow_redirects=False,
    )
    assert r.status_code == 302 and "/spawn-pending/gus" in r.headers["Location"], r.status_code
    try:
        wait_for(
            lambda: gus.api("GET", "/users/gus").json()["servers"].get("", {}).get("ready"),
            90,
            what="gus's server to start",
        )
    finally:
        gus.api("DELETE", "/users/gus/server")
        wait_for(lambda: not gus.api("GET", "/users/gus").json()["servers"], 60, what="stop")
