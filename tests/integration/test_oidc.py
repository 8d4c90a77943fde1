"""OpenID Connect log-in against a real provider (the certified ``oidc-provider`` library
behind tools/oidc_provider/serve.mjs) that the module starts with its own users.

One provider and one hub for the module: local backend, ``auth.type: oidc`` with the client
secret in a file, PKCE as discovered, ``ml-team`` and ``students`` allowed, ``hub-admins``
admins; ``ml-team`` has a group folder, a GPU profile of its own and a GPU quota of 2 on
two declared GPUs (everyone else: 0). The flow is walked over HTTP as a browser does: the
hub's ``/hub/oauth_login``, the provider's own log-in form, the redirect back. Between
log-ins the provider's users change as a directory admin would change them.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from gputest import SchedulerClient, gpu_hub_config
from hub_config import hub as hub_module
from hub_config.oidc import STATE_REFUSED
from hub_config.roster import refusal as roster_refusal
from hubtest import new_password, token_api
from oidctest import provider_fixture, provider_login, submit_password, to_provider_form

pytestmark = pytest.mark.integration

PASSWORDS = {name: new_password() for name in ("ann", "bea", "cid", "eve", "hedy", "ivo")}
GROUPS = {
    "ann": ["ml-team"],
    "bea": ["students"],
    "cid": ["ml-team"],
    "eve": ["visitors"],  # allowed by no rule
    "hedy": ["hub-admins"],
    "ivo": ["ml-team"],
}
PROFILES = [
    {"name": "cpu", "display_name": "CPU only", "default": True},
    {"name": "small", "display_name": "Small", "cpu_limit": 0.5},
    {"name": "gpu", "display_name": "One GPU", "gpus": 1, "groups": ["ml-team"]},
]


provider = provider_fixture(
    {name: {"password": PASSWORDS[name], "groups": GROUPS[name]} for name in PASSWORDS}
)


@pytest.fixture(scope="module")
def hub(hub_factory, provider, tmp_path_factory):
    secret_file = tmp_path_factory.mktemp("secret") / "client-secret"
    config = {
        "hub": {"log_level": "DEBUG"},
        "auth": provider.auth_section(
            secret_file,
            allowed_groups=["ml-team", "students"],
            admin_groups=["hub-admins"],
            login_service="Example SSO",
        ),
        **gpu_hub_config(PROFILES, count=2, quotas={"ml-team": 2}, default_quota=0),
        "volumes": {"groups": [{"group": "ml-team"}]},
        "culling": {"enabled": False},
    }
    return provider.start_with_hub(hub_factory, config, "oidc")


def log_in(hub, name: str):
    s = hub.session()
    r = provider_login(s, hub.url, name, PASSWORDS[name])
    s.username = name
    return s, r


def logged_in(session) -> bool:
    return any(c.name == "jupyterhub-hub-login" for c in session.cookies)


def has_group_folder(session, name: str, group: str) -> bool:
    token = session.new_token("folder check")
    r = token_api(session.base, token, "GET", f"/user/{name}/api/contents/groups/{group}")
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def test_the_login_page_sends_people_to_the_provider(hub):
    r = hub.session().get(hub.url + "/hub/login")
    assert r.status_code == 200
    assert "Sign in with Example SSO" in r.text
    assert "/hub/oauth_login" in r.text
    assert 'name="password"' not in r.text  # the hub asks for no password itself


def test_a_member_logs_in_on_the_providers_page_with_pkce_and_their_groups(hub, provider):
    s = hub.session()
    form = to_provider_form(s, hub.url)
    # the hub sent the browser with a PKCE challenge (the provider lists S256)
    assert "code_challenge" in form.history[-1].url or any(
        "code_challenge=" in h.headers.get("location", "") for h in form.history
    )
    r = s.get(submit_password(s, form, "ann", PASSWORDS["ann"]), allow_redirects=False)
    assert r.status_code == 302, r.text
    s.username = "ann"
    model = s.me()
    assert (model["name"], model["groups"], model["admin"]) == ("ann", ["ml-team"], False)
    assert "PKCE on" in hub.log()


def test_a_wrong_password_fails_on_the_providers_page(hub):
    s = hub.session()
    r = submit_password(s, to_provider_form(s, hub.url), "ann", "not-" + PASSWORDS["ann"])
    assert r.status_code == 401
    assert "Invalid username or password." in r.text
    assert not logged_in(s)


def test_someone_in_no_allowed_group_is_refused_by_the_hub(hub):
    s, r = log_in(hub, "eve")
    assert r.status_code == 403
    assert "not currently authorized to use this hub" in r.text
    assert not logged_in(s)


def test_the_admin_group_makes_an_admin(hub):
    s, r = log_in(hub, "hedy")
    assert r.status_code == 302
    assert s.me()["admin"] is True
    assert s.me()["groups"] == ["hub-admins"]


def test_a_tampered_state_is_refused_with_a_clear_page(hub):
    s = hub.session()
    callback = submit_password(s, to_provider_form(s, hub.url), "cid", PASSWORDS["cid"])
    url = urlparse(callback)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    # another state than the one this browser was sent off with (as a forged link has)
    query["state"] = "eyJzdGF0ZV9pZCI6ICJmb3JnZWQifQ"
    r = s.get(url._replace(query=urlencode(query)).geturl(), allow_redirects=False)
    assert r.status_code == 400
    assert STATE_REFUSED in r.text.replace("&#39;", "'")
    assert not logged_in(s)
    # no state at all
    query.pop("state")
    r = s.get(url._replace(query=urlencode(query)).geturl(), allow_redirects=False)
    assert r.status_code == 400 and not logged_in(s)


def gpu_quota(hub, session) -> int:
    """The user's GPU quota as the GPU scheduler sees it (its API, with the user's token)."""
    r = SchedulerClient(hub).api(session.new_token("quota"), "GET", "capacity")
    assert r.status_code == 200, r.text
    return r.json()["quota"]


def test_the_directory_group_drives_profile_folder_and_quota(hub, provider):
    """ivo is in ml-team at the provider: the GPU profile, the folder and the quota of
    ml-team are his; the provider moves him to students: at his next start (the hub asks
    the provider again) and at his next log-in they are gone."""
    s, r = log_in(hub, "ivo")
    assert r.status_code == 302
    form = s.spawn_form()
    assert 'value="gpu"' in form  # ml-team's profile
    assert "your quota of 2" in form
    assert gpu_quota(hub, s) == 2
    s.start_server("ivo", {"profile": "cpu"})
    assert has_group_folder(s, "ivo", "ml-team")
    s.stop_server("ivo")

    provider.set_groups("ivo", ["students"])
    # the next start refreshes from the provider before it spawns (no new log-in)
    s.start_server("ivo", {"profile": "cpu"})
    assert s.me()["groups"] == ["students"]
    assert not has_group_folder(s, "ivo", "ml-team")
    assert gpu_quota(hub, s) == 0
    s.stop_server("ivo")
    form = s.spawn_form()
    assert 'value="small"' in form and 'value="gpu"' not in form
    # and a new log-in says the same
    s, r = log_in(hub, "ivo")
    assert r.status_code == 302
    assert s.me()["groups"] == ["students"]
    # back in ml-team at the provider: back are the profile and the quota at log-in
    provider.set_groups("ivo", ["ml-team"])
    s, r = log_in(hub, "ivo")
    assert 'value="gpu"' in s.spawn_form()
    assert gpu_quota(hub, s) == 2


def test_a_user_removed_at_the_provider_cannot_start_nor_log_in(hub, provider):
    s, r = log_in(hub, "bea")
    assert r.status_code == 302
    provider.remove_user("bea")
    # her session is still there, but a start asks the provider first
    r = s.api("POST", "/users/bea/server", json={"profile": "cpu"})
    assert r.status_code == 403, r.text
    assert "login again" in r.json()["message"]
    # and the provider's own page refuses her
    s = hub.session()
    r = submit_password(s, to_provider_form(s, hub.url), "bea", PASSWORDS["bea"])
    assert r.status_code == 401 and "Invalid username or password." in r.text
    assert not logged_in(s)


def test_leaving_the_allowed_groups_ends_access_at_the_next_start(hub, provider):
    s, r = log_in(hub, "cid")
    assert r.status_code == 302
    provider.set_groups("cid", ["visitors"])
    r = s.api("POST", "/users/cid/server", json={"profile": "cpu"})
    assert r.status_code == 403, r.text
    s2, r = log_in(hub, "cid")
    assert r.status_code == 403 and not logged_in(s2)


def test_tokens_are_kept_encrypted_and_secrets_stay_out_of_the_log(hub, provider):
    admin, r = log_in(hub, "hedy")
    token = admin.new_token("auth state")
    s, r = log_in(hub, "ann")
    state = token_api(hub.url, token, "GET", "/hub/api/users/ann").json()["auth_state"]
    access_token = state["access_token"]
    assert access_token and state["oauth_user"]["groups"] == ["ml-team"]
    # in the database only encrypted, under the data dir's key
    db = sqlite3.connect(hub.data_dir / "jupyterhub.sqlite")
    (blob,) = db.execute("SELECT encrypted_auth_state FROM users WHERE name='ann'").fetchone()
    db.close()
    assert blob and access_token.encode() not in blob and b"ml-team" not in blob
    key = (hub.data_dir / hub_module.CRYPT_KEY_FILE).read_text()
    log = hub.log()
    for secret in (provider.client_secret, access_token, key, PASSWORDS["ann"]):
        assert secret not in log


def test_the_roster_lists_directory_users_but_refuses_to_import(hub, tmp_path):
    admin, r = log_in(hub, "hedy")
    env = {**os.environ, "DLHUB_API_TOKEN": admin.new_token("roster"), "DLHUB_CONFIG": ""}
    cli = [sys.executable, "-m", "hub_config", "roster"]
    config = ["--config", str(hub.config_file), "--hub", hub.url]
    out = subprocess.run(cli + ["export"] + config, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "hedy,hub-admins,true" in out.stdout.splitlines()
    roster = tmp_path / "roster.csv"
    roster.write_text("username,groups,admin\nann,ml-team;extra,false\nzed,ml-team,false\n")
    out = subprocess.run(
        cli + ["import", str(roster)] + config, env=env, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [roster_refusal("oidc")]
    assert "zed" not in {u["name"] for u in admin.api("GET", "/users").json()}


def assert_name_refused(hub, provider, name: str) -> None:
    """``name``, a new ml-team account at the provider, is refused at log-in (403, the
    hub's log says so) and never becomes a hub user."""
    password = new_password()
    provider.add_user(name, {"password": password, "groups": ["ml-team"]})
    s = hub.session()
    r = provider_login(s, hub.url, name, password)
    assert r.status_code == 403 and not logged_in(s)
    assert f"'{name}' is not allowed" in hub.log()
    admin, _ = log_in(hub, "hedy")
    assert name not in {u["name"] for u in admin.api("GET", "/users").json()}


def test_a_provider_name_outside_the_username_rule_is_refused(hub, provider):
    assert_name_refused(hub, provider, "dan@lab.example")


def test_a_provider_name_differing_only_in_case_is_not_folded_onto_another_user(hub, provider):
    """'Ann' at the provider is another account than 'ann': the hub does not lower-case it
    into ann's hub user, it refuses the name (outside the username rule)."""
    assert_name_refused(hub, provider, "Ann")


@pytest.mark.parametrize(
    "name, groups, said",
    [
        ("gil", ["ml-team"] + [f"bulk-{i}" for i in range(5000)], "lists 5001 groups"),
        ("hal", ["ml-team", "x" * 10_000], "longer than 255 characters"),
    ],
)
def test_too_many_or_too_long_groups_are_refused_and_not_stored(hub, provider, name, groups, said):
    password = new_password()
    provider.add_user(name, {"password": password, "groups": groups})
    s = hub.session()
    r = provider_login(s, hub.url, name, password)
    assert r.status_code == 403 and said in r.text, (r.status_code, r.text[-500:])
    assert not logged_in(s)
    admin, _ = log_in(hub, "hedy")
    stored = {g["name"] for g in admin.api("GET", "/groups").json()}
    assert not any(g.startswith(("bulk-", "xxxx")) for g in stored)
    assert name not in {u["name"] for u in admin.api("GET", "/users").json()}
