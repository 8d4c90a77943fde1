"""Checklist (11), sign-ups that cannot fill the hub: a per-address sign-up throttle and a
cap on the sign-ups that wait for approval, on one real hub (approval required).

Each client connects to the hub's proxy from an address of its own (a different
127.0.0.x source address), as visitors on different machines do; nothing is faked.
What the hub stored is read back from NativeAuthenticator's ``users_info`` table.
"""

from __future__ import annotations

import html
import itertools
import sqlite3

import pytest
from requests.adapters import HTTPAdapter

from hubtest import Browserless, new_password, token_api

pytestmark = pytest.mark.integration

SIGNUPS = 3  # auth.throttle_signups
PENDING = 6  # auth.max_pending_signups
_addresses = (f"127.0.0.{i}" for i in itertools.count(10))


class _From(HTTPAdapter):
    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client(hub) -> Browserless:
    """A session that connects from an address no other client of this module uses."""
    s = Browserless(hub.url)
    s.mount("http://", _From(next(_addresses)))
    return s


def signup(s: Browserless, name: str, password: str | None = None):
    password = password or new_password()
    s.get(s.url("/hub/signup"))
    return s.post_form(
        "/hub/signup",
        {"username": name, "signup_password": password, "signup_password_confirmation": password},
    )


def text(r) -> str:
    return html.unescape(r.text)


@pytest.fixture(scope="module")
def hub(hub_factory):
    auth = {
        "throttle_signups": SIGNUPS,
        "throttle_seconds": 600,
        "max_pending_signups": PENDING,
        # the log-in throttle does not count sign-ups; off so that it plays no part here
        "throttle_failed_logins": 0,
    }
    return hub_factory({"auth": auth, "culling": {"enabled": False}})


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


def signups(hub) -> dict[str, bool]:
    """Every stored sign-up: name -> approved."""
    with sqlite3.connect(hub.data_dir / "jupyterhub.sqlite") as db:
        rows = db.execute("SELECT username, is_authorized FROM users_info").fetchall()
    return {name: bool(approved) for name, approved in rows}


def test_an_address_with_too_many_signups_waits_and_nothing_is_stored(hub):
    s = client(hub)
    # every sign-up counts, a refused one too
    r = signup(s, "Not A Name")
    assert r.status_code == 400
    for i in range(SIGNUPS - 1):
        assert signup(s, f"flood{i}").status_code == 200
    r = signup(s, "flood-more")
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 600
    assert f"Too many sign-ups from your address: try again in {wait} seconds" in text(r)
    stored = signups(hub)
    assert {f"flood{i}" for i in range(SIGNUPS - 1)} <= set(stored)
    assert "flood-more" not in stored
    # another address signs up as usual
    assert signup(client(hub), "elsewhere").status_code == 200
    assert "elsewhere" in signups(hub)


def test_no_more_signups_wait_than_the_cap_and_known_users_still_sign_up(hub, admin):
    waiting = sum(not approved for approved in signups(hub).values())
    for i in range(PENDING - waiting):
        assert signup(client(hub), f"queued{i}").status_code == 200
    assert sum(not approved for approved in signups(hub).values()) == PENDING

    r = signup(client(hub), "one-too-many")
    assert r.status_code == 503
    assert "Too many accounts are waiting for an admin's approval: please ask an admin" in (
        text(r)
    )
    assert "one-too-many" not in signups(hub)

    # a user the admin made (approved at sign-up) does not wait, so the cap does not apply
    token = admin.new_token("signup limits")
    assert token_api(hub.url, token, "POST", "/hub/api/users/known").status_code == 201
    password = new_password()
    assert signup(client(hub), "known", password).status_code == 200
    assert signups(hub)["known"] is True
    client(hub).login("known", password)

    # once an admin approves one, there is room again
    admin.approve("queued0")
    assert signup(client(hub), "one-too-many").status_code == 200
    assert signups(hub)["one-too-many"] is False
