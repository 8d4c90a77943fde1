"""The scheduler's pages and the user's choices while waiting, with a real hub.

2 declared GPUs; users log in through the hub (OAuth) exactly as a browser does.
"""

import json
import re

import pytest
import requests

from gputest import SchedulerClient, gpu_hub_config
from hubtest import (
    new_password,
    run_code,
    start_server,
    stop_server,
    token_api,
    wait_for,
)

pytestmark = pytest.mark.integration

PAGES = "/services/gpu-scheduler/"


@pytest.fixture(scope="module")
def hub(hub_factory):
    profiles = [
        {
            "name": "gpu",
            "display_name": "One GPU",
            "gpus": 1,
            "default": True,
            "gpu_idle_timeout": 3600,
        },
        {"name": "gpu-long", "gpus": 1, "gpu_idle_timeout": 86400},
    ]
    # every lease of the "gpu" profile is within its warning time from the start
    config = {**gpu_hub_config(profiles, warn_before=7200), "culling": {"enabled": False}}
    return hub_factory(config, name="gpupages")


@pytest.fixture(scope="module")
def users(hub):
    admin = hub.admin()
    out = {"admin": admin}
    for name in ("alice", "bob", "carol", "dora"):
        out[name] = hub.approved_user(admin, name)
    return out


@pytest.fixture(scope="module")
def tokens(users):
    return {name: s.new_token("pages") for name, s in users.items()}


def page(session, path=""):
    r = session.get(session.url(PAGES + path), timeout=30)
    assert r.status_code == 200, r.text
    assert r.url.startswith(session.url(PAGES)), f"ended at {r.url}"
    return r.text


def form_xsrf(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)


def service_xsrf(session) -> str:
    """The xsrf token the scheduler's pages set for this session (their forms carry it)."""
    return next(c.value for c in session.cookies if c.name == "_xsrf" and c.path == PAGES)


def server_running(hub, token, user) -> bool:
    model = token_api(hub.url, token, "GET", f"/hub/api/users/{user}").json()
    return bool(model["servers"].get("", {}).get("ready"))


def state(hub, tokens):
    return SchedulerClient(hub).state(tokens["admin"])


def test_admin_sees_who_holds_which_gpu_and_reclaims_from_the_page(hub, users, tokens):
    start_server(hub.url, tokens["alice"], "alice")
    admin_page = page(users["admin"])
    table = admin_page[admin_page.index('id="leases"') :]
    assert 'data-user="alice"' in table and "A100 #0" in table and "GPU-0" in table
    assert "Reclaim" in table and "(idle)" in table

    # alice sees her own share, not the admin table
    alice_page = page(users["alice"])
    assert 'id="my-gpus"' in alice_page and 'data-user="alice"' in alice_page
    assert 'id="leases"' not in alice_page and "Reclaim" not in alice_page

    (lease,) = state(hub, tokens)["leases"]
    # a non-admin's form post, and a token instead of the browser's cookie, are refused
    r = users["alice"].post(
        users["alice"].url(f"{PAGES}leases/{lease['id']}/reclaim"),
        data={"_xsrf": service_xsrf(users["alice"])},
        allow_redirects=False,
    )
    assert r.status_code == 403
    r = token_api(hub.url, tokens["admin"], "GET", PAGES)
    assert r.status_code == 403 and "browser" in r.text
    # without the page's xsrf token the admin's own post does nothing
    r = users["admin"].post(
        users["admin"].url(f"{PAGES}leases/{lease['id']}/reclaim"), allow_redirects=False
    )
    assert r.status_code in (302, 403) and state(hub, tokens)["leases"]

    r = users["admin"].post(
        users["admin"].url(f"{PAGES}leases/{lease['id']}/reclaim"),
        data={"_xsrf": form_xsrf(admin_page)},
    )
    assert r.status_code == 200
    wait_for(lambda: not server_running(hub, tokens["alice"], "alice"), 30, what="the stop")
    assert state(hub, tokens)["leases"] == []


def progress_html(hub, token, user, until: str, timeout=60):
    url = f"{hub.url}/hub/api/users/{user}/server/progress"
    with requests.get(
        url, headers={"Authorization": f"token {token}"}, stream=True, timeout=timeout
    ) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                if until in event.get("message", ""):
                    return event
    raise AssertionError(f"no progress event with {until!r}")


def test_a_waiting_user_starts_on_cpu_or_stops_waiting(hub, users, tokens):
    start_server(hub.url, tokens["alice"], "alice")
    start_server(hub.url, tokens["bob"], "bob")
    try:
        r = token_api(hub.url, tokens["carol"], "POST", "/hub/api/users/carol/server", json={})
        assert r.status_code == 202
        event = progress_html(hub, tokens["carol"], "carol", "Waiting for a GPU: position 1")
        assert f'href="{PAGES}wait/"' in event["html_message"]
        wait_page = page(users["carol"], "wait/")
        assert "number <strong>1</strong>" in wait_page and "Start on CPU instead" in wait_page

        r = users["carol"].post(
            users["carol"].url(PAGES + "wait/"),
            data={"_xsrf": form_xsrf(wait_page), "action": "cpu"},
            allow_redirects=False,
        )
        assert r.status_code == 302 and r.headers["Location"] == "/hub/spawn-pending/carol"
        wait_for(lambda: server_running(hub, tokens["carol"], "carol"), 60, what="carol on CPU")
        out = run_code(
            hub.url,
            tokens["carol"],
            "carol",
            "import os; print(repr(os.environ['CUDA_VISIBLE_DEVICES']))",
        )
        assert out["stdout"].strip() == "''"
        assert all(x["user"] != "carol" for x in state(hub, tokens)["leases"])

        # dora stops waiting: her start fails with that reason and nothing is left queued
        r = token_api(hub.url, tokens["dora"], "POST", "/hub/api/users/dora/server", json={})
        assert r.status_code == 202
        progress_html(hub, tokens["dora"], "dora", "Waiting for a GPU")
        wait_page = page(users["dora"], "wait/")
        users["dora"].post(
            users["dora"].url(PAGES + "wait/"),
            data={"_xsrf": form_xsrf(wait_page), "action": "cancel"},
        )

        def dora_gave_up():
            model = token_api(hub.url, tokens["dora"], "GET", "/hub/api/users/dora").json()
            return "" not in model["servers"]

        wait_for(dora_gave_up, 30, what="dora's start to end")
        assert state(hub, tokens)["waiting"] == []
        assert "not waiting" in page(users["dora"], "wait/")
    finally:
        for user in ("alice", "bob", "carol"):
            stop_server(hub.url, tokens[user], user)


def test_the_server_tells_jupyterlab_before_its_gpu_is_taken_back(hub, tokens):
    start_server(hub.url, tokens["alice"], "alice")
    start_server(hub.url, tokens["bob"], "bob", options={"profile": "gpu-long"})
    try:
        r = token_api(hub.url, tokens["alice"], "GET", "/user/alice/dlhub/gpu-notices")
        assert r.status_code == 200
        (notice,) = r.json()["notices"]
        assert notice["level"] == "warning"
        assert "will be stopped at" in notice["message"] and "idle for 0 min" in notice["message"]
        # a lease far from its reclaim has no notice
        r = token_api(hub.url, tokens["bob"], "GET", "/user/bob/dlhub/gpu-notices")
        assert r.json() == {"notices": []}
        # and another user's token does not get alice's notices
        r = token_api(hub.url, tokens["bob"], "GET", "/user/alice/dlhub/gpu-notices")
        assert r.status_code == 403
    finally:
        for user in ("alice", "bob"):
            stop_server(hub.url, tokens[user], user)


def set_cookies_along(r, path: str) -> dict[str, str]:
    """Set-Cookie headers (raw text, by cookie name) of every hop of a redirected request,
    of cookies scoped to ``path`` (not those that clear a cookie)."""
    out = {}
    for hop in [*r.history, r]:
        for header in hop.raw.headers.getlist("Set-Cookie"):
            name, value = header.split(";", 1)[0].split("=", 1)
            if value in ("", '""'):
                continue
            if f"Path={path};" in header or header.endswith(f"Path={path}"):
                out[name] = header
    return out


def test_the_pages_and_the_users_server_set_samesite_httponly_cookies(hub, users, tokens):
    """The scheduler's pages and a user's server log in through the hub (OAuth) and set
    cookies of their own: SameSite=Lax and HttpOnly like the hub's (plain http here: no
    Secure)."""
    password = new_password()
    s = hub.session()
    s.signup("erin", password)
    users["admin"].approve("erin")
    s.login("erin", password)
    r = s.get(s.url(PAGES), timeout=30)
    assert r.status_code == 200 and r.url == s.url(PAGES)
    cookies = set_cookies_along(r, PAGES)
    # the OAuth state, the log-in and the pages' xsrf cookie
    assert len(cookies) >= 3 and "_xsrf" in cookies, cookies
    for header in cookies.values():
        assert "SameSite=Lax" in header and "HttpOnly" in header, header
        assert "Secure" not in header, header

    token = s.new_token("cookies")
    start_server(hub.url, token, "erin")
    try:
        r = s.get(s.url("/user/erin/lab"), timeout=30)
        assert r.status_code == 200 and r.url.startswith(s.url("/user/erin/")), r.url
        cookies = set_cookies_along(r, "/user/erin/")
        assert "jupyterhub-user-erin" in cookies, cookies
        for header in cookies.values():
            assert "SameSite=Lax" in header, header
        assert "HttpOnly" in cookies["jupyterhub-user-erin"]
    finally:
        stop_server(hub.url, token, "erin")
