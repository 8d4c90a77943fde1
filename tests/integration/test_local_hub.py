"""A real hub and proxy on the local backend: users, servers, kernels, profiles, security."""

import math
import stat

import pytest
import requests

from hubtest import new_password, run_code, start_server, stop_server, token_api, wait_for

pytestmark = pytest.mark.integration

PROFILES = [
    {
        "name": "standard",
        "display_name": "Standard",
        "description": "Two cores and 4 GB",
        "cpu_limit": 2,
        "mem_limit": "4G",
        "default": True,
    },
    {"name": "small", "display_name": "Small", "cpu_limit": 0.5, "mem_limit": "1G"},
]

TF_FIT = """
import math, os
import numpy as np
import tensorflow as tf, keras, sklearn
x = np.random.rand(64, 4).astype("float32")
y = np.random.rand(64, 1).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
history = model.fit(x, y, epochs=1, verbose=0)
print("LOSS", history.history["loss"][0])
print("VERSIONS", tf.__version__, keras.__version__, sklearn.__version__)
print("ENV", os.environ["DLHUB_PROFILE"], os.environ["MEM_LIMIT"], os.environ["CPU_LIMIT"])
print("CWD", os.getcwd())
"""


@pytest.fixture(scope="module")
def hub(hub_factory):
    return hub_factory({"profiles": PROFILES, "culling": {"enabled": False}})


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def admin_token(admin):
    return admin.new_token("integration tests")


@pytest.fixture(scope="module")
def alice(hub, admin):
    return hub.approved_user(admin, "alice")


@pytest.fixture(scope="module")
def bob(hub, admin):
    return hub.approved_user(admin, "bob")


def lines(stdout: str) -> dict:
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.strip()}


def test_state_files_are_private(hub):
    assert stat.S_IMODE(hub.data_dir.stat().st_mode) == 0o700
    for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret"):
        assert stat.S_IMODE((hub.data_dir / name).stat().st_mode) == 0o600, name


def test_unapproved_user_cannot_log_in(hub):
    s = hub.session()
    s.signup("mallory", "pw-not-approved-123")
    s.get(s.url("/hub/login"))
    r = s.post_form(
        "/hub/login",
        {"username": "mallory", "password": "pw-not-approved-123"},
        allow_redirects=False,
    )
    assert r.status_code != 302
    assert "_xsrf" in {c.name for c in s.cookies}
    assert not any(c.name.startswith("jupyterhub-session") for c in s.cookies)


def test_user_runs_tensorflow_in_a_real_kernel(hub, alice):
    token = alice.new_token("kernel test")
    server = start_server(hub.url, token, "alice")
    try:
        assert server["url"] == "/user/alice/"
        out = run_code(hub.url, token, "alice", TF_FIT)
        assert out["status"] == "ok", out
        values = lines(out["stdout"])
        assert math.isfinite(float(values["LOSS"][0]))
        # the default profile applied; the working directory is the user's own, private
        assert values["ENV"] == ["standard", str(4 * 1024**3), "2.0"]
        home = hub.home("alice")
        assert values["CWD"] == [str(home)]
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        # the starter notebooks are there on the first start
        listing = token_api(hub.url, token, "GET", "/user/alice/api/contents").json()["content"]
        names = {item["name"] for item in listing}
        assert {"01-keras-digits.ipynb", "04-do-i-have-a-gpu.ipynb"} <= names
    finally:
        stop_server(hub.url, token, "alice")


def test_spawn_form_lists_profiles(hub, alice):
    r = alice.get(alice.url("/hub/spawn"))
    assert r.status_code == 200
    assert 'name="profile"' in r.text
    assert 'value="standard" checked' in r.text and 'value="small"' in r.text
    assert "Two cores and 4 GB" in r.text


def test_profile_chosen_on_the_form(hub, alice):
    r = alice.post_form("/hub/spawn", {"profile": "small"})
    assert r.status_code == 200
    token = alice.new_token("form spawn")

    def ready():
        model = token_api(hub.url, token, "GET", "/hub/api/users/alice").json()
        return model["servers"].get("", {}).get("ready")

    wait_for(ready, 120, what="alice's server from the form")
    try:
        out = run_code(hub.url, token, "alice", "import os; print(os.environ['DLHUB_PROFILE'])")
        assert out["stdout"].strip() == "small", out
    finally:
        stop_server(hub.url, token, "alice")


def test_unknown_profile_is_a_400_naming_the_choices(hub, bob):
    token = bob.new_token("bad profile")
    r = token_api(hub.url, token, "POST", "/hub/api/users/bob/server", json={"profile": "huge"})
    assert r.status_code == 400
    assert r.json()["message"] == "unknown profile 'huge'; choose one of: standard, small"
    model = token_api(hub.url, token, "GET", "/hub/api/users/bob").json()
    assert model["servers"] == {}


def test_other_users_server_is_forbidden(hub, alice, bob):
    alice_token = alice.new_token("owner")
    bob_token = bob.new_token("intruder")
    start_server(hub.url, alice_token, "alice")
    try:
        assert token_api(hub.url, alice_token, "GET", "/user/alice/api/status").status_code == 200
        r = token_api(hub.url, bob_token, "GET", "/user/alice/api/contents")
        assert r.status_code == 403
        r = token_api(hub.url, bob_token, "POST", "/user/alice/api/kernels", json={})
        assert r.status_code == 403
        # nor through the hub API: start, stop or read alice's server
        for method, path in [
            ("DELETE", "/hub/api/users/alice/server"),
            ("POST", "/hub/api/users/alice/tokens"),
            ("GET", "/hub/api/users/alice"),
        ]:
            assert token_api(hub.url, bob_token, method, path).status_code in (403, 404), path
        # bob's browser session is not let into alice's server either
        r = bob.get(bob.url("/user/alice/lab"), allow_redirects=True)
        assert r.status_code == 403 or "/user/alice/lab" not in r.url
    finally:
        stop_server(hub.url, alice_token, "alice")


def test_non_admin_cannot_reach_admin_api(hub, bob):
    token = bob.new_token("non-admin")
    assert token_api(hub.url, token, "GET", "/hub/api/users").status_code == 403
    r = token_api(hub.url, token, "POST", "/hub/api/users/eve", json={})
    assert r.status_code == 403
    r = token_api(hub.url, token, "PATCH", "/hub/api/users/bob", json={"admin": True})
    assert r.status_code == 403
    assert bob.get(bob.url("/hub/authorize")).status_code == 403


def test_admin_manages_users_and_groups(hub, admin, admin_token):
    r = token_api(hub.url, admin_token, "POST", "/hub/api/users/carol", json={})
    assert r.status_code == 201
    r = token_api(hub.url, admin_token, "POST", "/hub/api/groups/course", json={})
    assert r.status_code == 201
    r = token_api(
        hub.url, admin_token, "POST", "/hub/api/groups/course/users", json={"users": ["carol"]}
    )
    assert r.status_code == 200
    group = token_api(hub.url, admin_token, "GET", "/hub/api/groups/course").json()
    assert group["users"] == ["carol"]
    start_server(hub.url, admin_token, "carol")
    stop_server(hub.url, admin_token, "carol")
    # an account the admin created signs up for a password and is approved at once
    # (auth.approve_known_users)
    carol = hub.session()
    password = new_password()
    carol.signup("carol", password)
    carol.login("carol", password)
    assert carol.get(carol.url("/hub/api/user"), headers={"X-XSRFToken": carol.xsrf()}).json()[
        "groups"
    ] == ["course"]


def test_spawn_form_post_without_xsrf_is_refused(hub, bob):
    r = bob.post(bob.url("/hub/spawn"), data={"profile": "small"}, allow_redirects=False)
    assert r.status_code == 403
    model = token_api(hub.url, bob.new_token("check"), "GET", "/hub/api/users/bob").json()
    assert model["servers"] == {}


def test_api_token_in_url_is_not_accepted(hub, bob):
    token = bob.new_token("url token")
    r = requests.get(f"{hub.url}/hub/api/user?token={token}", timeout=10)
    assert r.status_code == 403


def test_tokens_never_logged(hub, alice):
    token = alice.new_token("log check")
    token_api(hub.url, token, "GET", "/hub/api/user")
    assert token not in hub.log()


def test_repeated_failed_logins_lock_the_account(hub, admin):
    password = "pw-frank-correct-1"
    frank = hub.session()
    frank.signup("frank", password)
    admin.approve("frank")
    for _ in range(5):
        r = frank.post_form(
            "/hub/login", {"username": "frank", "password": "wrong-pw-123"}, allow_redirects=False
        )
        assert r.status_code != 302
    # locked: even the right password is refused for now
    r = frank.post_form(
        "/hub/login", {"username": "frank", "password": password}, allow_redirects=False
    )
    assert r.status_code != 302
