"""Named servers on the local backend (``servers.per_user: 2``): a user runs servers side by
side, each with its own profile, process, GPU lease and URL, all in the same home.

One hub for the module, GPU scheduling on two declared GPUs, culling off (its own test
starts a hub of its own).
"""

import ast
import re
import time

import pytest
import requests

from gputest import SchedulerClient, gpu_hub_config
from hubtest import run_ok, start_server, stop_server, token_api, wait_for

pytestmark = pytest.mark.integration

PROFILES = [
    {"name": "cpu", "display_name": "CPU only", "default": True, "mem_limit": "1G"},
    {"name": "gpu", "display_name": "One GPU", "gpus": 1, "mem_limit": "2G"},
]

WHO = "import os; print(os.getpid(), os.environ['DLHUB_PROFILE'], os.environ['HOME'], "
WHO += "repr(os.environ['CUDA_VISIBLE_DEVICES']), repr(os.environ['JUPYTERHUB_SERVER_NAME']))"


@pytest.fixture(scope="module")
def hub(hub_factory):
    config = {
        **gpu_hub_config(PROFILES),
        "servers": {"per_user": 2},
        "culling": {"enabled": False},
    }
    return hub_factory(config, name="named")


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def tokens(hub, admin):
    out = {"admin": admin.new_token("admin")}
    for name in ("alice", "bob"):
        out[name] = hub.approved_user(admin, name).new_token("named servers")
    return out


def who(hub, token, user, server):
    """pid, profile, home, CUDA_VISIBLE_DEVICES and server name, seen by a kernel of
    ``user``'s ``server``."""
    pid, profile, home, gpus, name = run_ok(hub.url, token, user, WHO, server=server).split()
    return {
        "pid": int(pid),
        "profile": profile,
        "home": home,
        "gpus": ast.literal_eval(gpus),
        "name": ast.literal_eval(name),
    }


def leases(hub, tokens):
    return sorted(
        (x["user"], x["server"], tuple(d["uuid"] for d in x["devices"]))
        for x in SchedulerClient(hub).leases(tokens["admin"])
    )


def test_two_servers_with_their_own_profiles_and_leases_run_at_once(hub, tokens):
    t = tokens["alice"]
    start_server(hub.url, t, "alice", {"profile": "gpu"}, server="train")
    start_server(hub.url, t, "alice", {"profile": "cpu"}, server="notes")
    try:
        train, notes = who(hub, t, "alice", "train"), who(hub, t, "alice", "notes")
        assert (train["profile"], train["gpus"], train["name"]) == ("gpu", "GPU-0", "train")
        assert (notes["profile"], notes["gpus"], notes["name"]) == ("cpu", "", "notes")
        # processes of their own, one home
        assert train["pid"] != notes["pid"] and train["home"] == notes["home"]
        run_ok(hub.url, t, "alice", "open('from-train.txt', 'w').write('hi')", server="train")
        seen = run_ok(hub.url, t, "alice", "print(open('from-train.txt').read())", server="notes")
        assert seen == "hi"
        # each at its own URL
        for server in ("train", "notes"):
            r = token_api(hub.url, t, "GET", f"/user/alice/{server}/api/status")
            assert r.status_code == 200, (server, r.status_code)
        assert leases(hub, tokens) == [("alice", "train", ("GPU-0",))]
    finally:
        stop_server(hub.url, t, "alice", server="train")
        stop_server(hub.url, t, "alice", server="notes")


def test_stopping_one_server_releases_its_lease_only(hub, admin, tokens):
    t = tokens["alice"]
    start_server(hub.url, t, "alice", {"profile": "gpu"})
    start_server(hub.url, t, "alice", {"profile": "gpu"}, server="train")
    try:
        held = leases(hub, tokens)
        assert [(u, s) for u, s, _ in held] == [("alice", ""), ("alice", "train")]
        assert sorted(d for *_, (d,) in held) == ["GPU-0", "GPU-1"]
        # the admins' page "who holds which GPU" names each lease's server
        r = admin.get(admin.url("/services/gpu-scheduler/"), timeout=30)
        assert r.status_code == 200 and "/services/gpu-scheduler/" in r.url, r.url
        table = r.text[r.text.index('id="leases"') :]
        rows = re.findall(r'<tr class="lease" data-user="alice".*?</tr>', table, re.S)
        assert sorted(re.findall(r"<td>(train|\(default\))</td>", "".join(rows))) == [
            "(default)",
            "train",
        ]
        default_gpu = who(hub, t, "alice", "")["gpus"]
        stop_server(hub.url, t, "alice", server="train")
        assert leases(hub, tokens) == [("alice", "", (default_gpu,))]
        assert who(hub, t, "alice", "")["gpus"] == default_gpu
    finally:
        stop_server(hub.url, t, "alice")
    assert leases(hub, tokens) == []


def test_one_server_more_than_the_limit_is_a_clear_400(hub, tokens):
    t = tokens["bob"]
    for server in ("one", "two"):
        # ready before the test stops it (JupyterHub cannot stop a server mid-spawn)
        start_server(hub.url, t, "bob", server=server)
    try:
        r = token_api(hub.url, t, "POST", "/hub/api/users/bob/servers/three", json={})
        assert r.status_code == 400
        assert "maximum of 2 named servers" in r.json()["message"]
        model = token_api(hub.url, t, "GET", "/hub/api/users/bob").json()
        assert "three" not in model["servers"]
    finally:
        for server in ("one", "two"):
            stop_server(hub.url, t, "bob", server=server)
            # a stopped named server still counts until it is deleted
            r = token_api(
                hub.url, t, "DELETE", f"/hub/api/users/bob/servers/{server}", json={"remove": True}
            )
            assert r.status_code in (202, 204), r.text


@pytest.mark.parametrize("name", ["a_b", "A", "-ab", "a--b", "x" * 31, "a%2fb", "ab/", "é"])
def test_bad_server_names_are_refused_with_a_400(hub, tokens, name):
    r = token_api(hub.url, tokens["alice"], "POST", f"/hub/api/users/alice/servers/{name}")
    assert 400 <= r.status_code < 500 and r.status_code != 401, (name, r.status_code)
    model = token_api(hub.url, tokens["alice"], "GET", "/hub/api/users/alice").json()
    assert set(model["servers"]) <= {""}


def test_another_user_cannot_reach_or_start_named_servers(hub, admin, tokens):
    t = tokens["alice"]
    start_server(hub.url, t, "alice", {"profile": "cpu"}, server="notes")
    try:
        bob = tokens["bob"]
        for path in ("/user/alice/notes/api/status", "/user/alice/notes/api/contents"):
            r = token_api(hub.url, bob, "GET", path, allow_redirects=False)
            assert r.status_code in (302, 403, 404), (path, r.status_code)
            if r.status_code == 302:  # to the hub's login, never into the server
                assert "/hub/" in r.headers["Location"], r.headers["Location"]
        # another user's browser session: the hub refuses them the server's log-in
        browser = hub.approved_user(admin, "carl")
        r = browser.get(hub.url + "/user/alice/notes/lab")
        assert r.status_code == 403 or "/user/alice/" not in r.url, (r.status_code, r.url)
        for method in ("POST", "DELETE"):
            r = token_api(hub.url, bob, method, "/hub/api/users/alice/servers/notes")
            assert r.status_code in (403, 404), (method, r.status_code)
        r = token_api(hub.url, bob, "POST", "/hub/api/users/alice/servers/mine", json={})
        assert r.status_code in (403, 404)
        model = token_api(hub.url, t, "GET", "/hub/api/users/alice").json()
        assert model["servers"]["notes"]["ready"] and "mine" not in model["servers"]
    finally:
        stop_server(hub.url, t, "alice", server="notes")


def test_the_hub_home_lists_the_named_servers(hub, admin):
    dora = hub.approved_user(admin, "dora")
    r = dora.api("POST", "/users/dora/servers/lab1", json={"profile": "cpu"})
    assert r.status_code in (201, 202), r.text
    try:
        page = dora.get(hub.url + "/hub/home")
        assert page.status_code == 200
        text = page.text
        assert 'data-server-name="lab1"' in text and "Add New Server" in text
        assert "/user/dora/lab1/" in text
    finally:
        dora.api("DELETE", "/users/dora/servers/lab1", json={"remove": True})


def test_the_idle_culler_stops_an_idle_named_server(hub_factory):
    culled = hub_factory(
        {
            "profiles": PROFILES[:1],
            "servers": {"per_user": 1},
            "culling": {"enabled": True, "timeout": 5, "every": 2},
        },
        name="named-cull",
    )
    erin = culled.approved_user(culled.admin(), "erin")
    token = erin.new_token("cull")
    start_server(culled.url, token, "erin", {"profile": "cpu"}, server="idle")
    started = time.monotonic()

    def stopped():
        model = token_api(culled.url, token, "GET", "/hub/api/users/erin").json()
        return "idle" not in model["servers"]

    wait_for(stopped, 90, interval=1, what="the idle culler to stop erin's named server")
    assert time.monotonic() - started >= 4
    # stopped, not removed: the server can start again under its name
    model = requests.get(
        f"{culled.url}/hub/api/users/erin?include_stopped_servers=1",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ).json()
    assert "idle" in model["servers"]
