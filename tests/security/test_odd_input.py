"""Checklist (5), huge and odd input: usernames that break the rule, passwords of any
length, unknown and odd names in the account pages, bad names through the REST API, and
the attributes of the hub's cookies. One real hub (local backend) for the module.

Every answer is a clear 4xx (never a 500), a refused name is never echoed in full, and
nothing is stored: the hub's users and NativeAuthenticator's ``users_info`` table are
read back after each refusal.
"""

from __future__ import annotations

import html
import sqlite3
from urllib.parse import quote

import pytest
import yaml

from hub_config import usernames
from hubtest import new_password, token_api

pytestmark = pytest.mark.integration

#: Names that break the rule, and why they are interesting.
ODD_NAMES = {
    "tab": "a\tb",
    "cr": "a\rb",
    "lf": "a\nb",
    "slash": "a/b",
    "percent-dot-dot": "..%2fx",
    "dot-dot": "a..b",
    "unicode": "ünï-çødé",
    "long": "u" * (usernames.MAX_LENGTH + 1),
    "65-chars": "v" * 65,
    "10mb": "w" * 10_000_000,
}
#: The refusal pages are the same size whatever was sent: nothing of a huge name comes back.
SMALL_PAGE = 64_000


@pytest.fixture(scope="module")
def hub(hub_factory):
    # open sign-up: accounts can log in at once, so the password tests need no approval;
    # every request comes from 127.0.0.1 here: the throttle (test_lockout.py) is off
    auth = {"open_signup": True, "throttle_failed_logins": 0}
    return hub_factory({"auth": auth, "culling": {"enabled": False}})


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def admin_token(admin):
    return admin.new_token("odd input")


def stored_names(hub, admin_token) -> set[str]:
    """Every name the hub stored: its users (REST API) and NativeAuthenticator's sign-ups."""
    r = token_api(hub.url, admin_token, "GET", "/hub/api/users")
    r.raise_for_status()
    names = {u["name"] for u in r.json()}
    with sqlite3.connect(hub.data_dir / "jupyterhub.sqlite") as db:
        names |= {name for (name,) in db.execute("SELECT username FROM users_info")}
    return names


def signup(session, name, password, confirmation=None):
    session.get(session.url("/hub/signup"))
    return session.post_form(
        "/hub/signup",
        {
            "username": name,
            "signup_password": password,
            "signup_password_confirmation": password if confirmation is None else confirmation,
        },
    )


def login(session, name, password):
    session.get(session.url("/hub/login"))
    return session.post_form(
        "/hub/login", {"username": name, "password": password}, allow_redirects=False
    )


def test_signup_page_states_the_rule(hub):
    r = hub.session().get(hub.url + "/hub/signup")
    assert r.status_code == 200
    assert usernames.RULE in html.unescape(r.text)


@pytest.mark.parametrize("name", list(ODD_NAMES.values()), ids=list(ODD_NAMES))
def test_odd_usernames_are_refused_at_signup_and_not_stored(hub, admin_token, name):
    before = stored_names(hub, admin_token)
    r = signup(hub.session(), name, new_password())
    assert r.status_code == 400, r.text[:500]
    assert usernames.RULE in html.unescape(r.text)
    assert len(r.content) < SMALL_PAGE
    assert stored_names(hub, admin_token) == before


@pytest.mark.parametrize("name", list(ODD_NAMES.values()), ids=list(ODD_NAMES))
def test_odd_usernames_are_refused_at_login(hub, name):
    r = login(hub.session(), name, new_password())
    assert r.status_code == 400, r.text[:500]
    assert len(r.content) < SMALL_PAGE
    assert usernames.RULE in html.unescape(r.text)


def test_a_login_without_a_password_is_a_400(hub):
    s = hub.session()
    s.get(s.url("/hub/login"))
    r = s.post_form("/hub/login", {"username": "alice"}, allow_redirects=False)
    assert r.status_code == 400
    assert "Please type your password" in r.text


@pytest.mark.parametrize("length", [73, 1000])
def test_long_passwords_sign_up_and_log_in(hub, length):
    name = f"longpw{length}"
    password = "€" * (length - 1) + "x"  # multi-byte: well beyond bcrypt's 72 bytes
    r = signup(hub.session(), name, password)
    assert r.status_code == 200 and "signup was successful" in r.text
    assert login(hub.session(), name, password).status_code == 302
    # every character counts: the same password with its last character changed fails
    wrong = login(hub.session(), name, password[:-1] + "y")
    assert wrong.status_code == 200 and "Invalid username or password" in wrong.text
    # so does the password cut where bcrypt would have cut it
    cut = password.encode()[:72].decode(errors="ignore")
    assert "Invalid username or password" in login(hub.session(), name, cut).text


def test_a_100k_password_is_refused_at_signup_and_fails_at_login(hub, admin_token):
    before = stored_names(hub, admin_token)
    huge = "p" * 100_000
    r = signup(hub.session(), "hugepw", huge)
    assert r.status_code == 400
    assert "at most 1024" in r.text
    assert stored_names(hub, admin_token) == before
    # an existing account, tried with a 100k password: a failed log-in, not a 500
    signup(hub.session(), "hugepw2", "fine-password-1")
    r = login(hub.session(), "hugepw2", huge)
    assert r.status_code == 200 and "Invalid username or password" in r.text


def test_weak_password_is_a_clear_400(hub):
    r = signup(hub.session(), "weakpw", "123")
    assert r.status_code == 400
    assert "at least 8 characters" in r.text


def test_a_long_password_changes_and_works(hub):
    old, new = "start-password-1", "ω" * 500
    signup(hub.session(), "changer", old)
    s = hub.session()
    assert login(s, "changer", old).status_code == 302
    s.get(s.url("/hub/change-password"))
    r = s.post_form(
        "/hub/change-password",
        {"old_password": old, "new_password": new, "new_password_confirmation": new},
    )
    assert r.status_code == 200 and "changed successfully" in r.text
    assert login(hub.session(), "changer", new).status_code == 302
    # a 100k current password is a wrong one, not a 500
    huge = "q" * 100_000
    r = s.post_form(
        "/hub/change-password",
        {"old_password": huge, "new_password": "x-new-pass", "new_password_confirmation": "x"},
    )
    assert r.status_code < 500 and "current password was incorrect" in r.text


@pytest.mark.parametrize("page", ["authorize", "discard", "change-password"])
@pytest.mark.parametrize("name", ["nobody", "..%2fx", "a%09b", "%C3%BC", "x" * 200])
def test_account_pages_answer_unknown_and_odd_names_with_a_4xx(admin, page, name):
    r = admin.get(admin.url(f"/hub/{page}/{name}"), allow_redirects=False)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert len(r.content) < SMALL_PAGE


@pytest.mark.parametrize("name", list(ODD_NAMES.values())[:-1], ids=list(ODD_NAMES)[:-1])
def test_rest_api_refuses_bad_names_with_a_400_json(hub, admin_token, name):
    before = stored_names(hub, admin_token)
    r = token_api(hub.url, admin_token, "POST", f"/hub/api/users/{quote(name, safe='')}")
    assert r.status_code == 400, r.text[:300]
    assert usernames.RULE in r.json()["message"]
    r = token_api(hub.url, admin_token, "POST", "/hub/api/users", json={"usernames": [name]})
    assert r.status_code == 400
    assert usernames.RULE in r.json()["message"]
    assert stored_names(hub, admin_token) == before


def test_rest_api_refuses_a_10mb_name_and_bad_bodies(hub, admin_token):
    before = stored_names(hub, admin_token)
    huge = "w" * 10_000_000
    r = token_api(hub.url, admin_token, "POST", "/hub/api/users", json={"usernames": [huge]})
    assert r.status_code == 400 and usernames.RULE in r.json()["message"]
    assert len(r.content) < SMALL_PAGE
    for body in ({"usernames": 5}, {"usernames": [5]}, ["x"]):
        r = token_api(hub.url, admin_token, "POST", "/hub/api/users", json=body)
        assert r.status_code == 400, (body, r.text[:300])
        assert r.json()["message"]
    assert stored_names(hub, admin_token) == before


def test_rest_api_creates_good_names_and_refuses_bad_renames(hub, admin_token):
    r = token_api(hub.url, admin_token, "POST", "/hub/api/users/good.name_1-x")
    assert r.status_code == 201
    r = token_api(
        hub.url, admin_token, "PATCH", "/hub/api/users/good.name_1-x", json={"name": "a/../b"}
    )
    assert r.status_code == 400 and usernames.RULE in r.json()["message"]
    assert "good.name_1-x" in stored_names(hub, admin_token)


def set_cookies(response) -> dict[str, str]:
    """Set-Cookie headers of a response by cookie name (raw header text)."""
    headers = response.raw.headers.getlist("Set-Cookie")
    return {h.split("=", 1)[0]: h for h in headers}


def test_hub_cookies_are_samesite_lax(hub):
    signup(hub.session(), "cookies", "cookie-password-1")
    s = hub.session()
    r = s.get(s.url("/hub/login"))
    xsrf = set_cookies(r)["_xsrf"]
    assert "SameSite=Lax" in xsrf
    r = login(s, "cookies", "cookie-password-1")
    assert r.status_code == 302
    cookies = set_cookies(r)
    login_cookie = cookies["jupyterhub-hub-login"]
    assert "SameSite=Lax" in login_cookie and "HttpOnly" in login_cookie
    assert "Secure" not in login_cookie  # served over plain http here
    assert "SameSite=Lax" in cookies["jupyterhub-session-id"]


def test_hub_cookies_are_secure_when_served_over_https(hub_factory):
    """A hub whose public URL is https (TLS ends in front of it) marks its cookies Secure."""
    config = {"auth": {"open_signup": True}, "culling": {"enabled": False}}
    https = hub_factory(config, name="https", start=False)
    https.config["hub"]["bind_url"] = f"https://127.0.0.1:{https.port}"
    https.config_file.write_text(yaml.safe_dump(https.config))
    https.start()
    r = https.session().get(https.url + "/hub/login")
    assert r.status_code == 200
    xsrf = set_cookies(r)["_xsrf"]
    assert "Secure" in xsrf and "SameSite=Lax" in xsrf
    # a browser sends Secure cookies back only over https; the test passes it by hand
    token = r.cookies["_xsrf"]

    def post(path, data):
        return https.session().post(
            https.url + path,
            data={**data, "_xsrf": token},
            headers={"Cookie": f"_xsrf={token}"},
            allow_redirects=False,
        )

    password = "secure-password-1"
    fields = {"signup_password": password, "signup_password_confirmation": password}
    assert post("/hub/signup", {"username": "secure", **fields}).status_code == 200
    r = post("/hub/login", {"username": "secure", "password": password})
    assert r.status_code == 302
    login_cookie = set_cookies(r)["jupyterhub-hub-login"]
    assert "Secure" in login_cookie and "SameSite=Lax" in login_cookie
