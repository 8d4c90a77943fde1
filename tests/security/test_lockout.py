"""Checklist (11), the lock-out and the throttle, on one real hub with short windows.

Each client connects to the hub's proxy from an address of its own (a different
127.0.0.x source address), so the proxy's ``X-Forwarded-For`` entry differs as it does
for visitors on different machines; nothing about the address is faked.
"""

from __future__ import annotations

import html
import itertools
import time

import pytest
from requests.adapters import HTTPAdapter

from hubtest import Browserless

pytestmark = pytest.mark.integration

THROTTLE = {"throttle_failed_logins": 3, "throttle_seconds": 4}
LOCK = {"allowed_failed_logins": 2, "lockout_seconds": 3}
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
    s.address = next(_addresses)
    s.mount("http://", _From(s.address))
    return s


def login(s: Browserless, name: str, password: str, **headers):
    s.get(s.url("/hub/login"), headers=headers)
    return s.post_form(
        "/hub/login",
        {"username": name, "password": password},
        allow_redirects=False,
        headers=headers,
    )


def text(r) -> str:
    return html.unescape(r.text)


@pytest.fixture(scope="module")
def hub(hub_factory):
    auth = {"open_signup": True, **THROTTLE, **LOCK}
    return hub_factory({"auth": auth, "culling": {"enabled": False}})


@pytest.fixture(scope="module")
def users(hub):
    """Accounts that can log in (open sign-up), one per test: name -> password."""
    made = {}
    for name in ("lockme", "throttled", "spoofer", "victim"):
        made[name] = f"right-password-{name}"
        client(hub).signup(name, made[name])
    return made


def test_a_locked_account_with_the_right_password_is_told_for_how_long(hub, users):
    attacker = client(hub)
    for _ in range(LOCK["allowed_failed_logins"]):
        assert "Invalid username or password" in text(login(attacker, "lockme", "wrong"))
    owner = client(hub)
    r = login(owner, "lockme", users["lockme"])
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= LOCK["lockout_seconds"]
    assert f"locked after too many failed log-ins: try again in {wait} seconds" in text(r)
    # a wrong password meanwhile learns nothing about the lock
    assert "Invalid username or password" in text(login(client(hub), "lockme", "guess"))
    time.sleep(wait + 0.5)
    # once the lock has run out it takes a full count again: one more guess does not lock
    assert "Invalid username or password" in text(login(client(hub), "lockme", "wrong"))
    assert login(owner, "lockme", users["lockme"]).status_code == 302


def test_an_address_with_too_many_failures_waits_then_may_log_in(hub, users):
    s = client(hub)
    for _ in range(THROTTLE["throttle_failed_logins"]):
        assert login(s, "nobody-here", "wrong").status_code == 200
    r = login(s, "throttled", users["throttled"])  # even the right password waits
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= THROTTLE["throttle_seconds"]
    assert f"Too many failed log-ins from your address: try again in {wait} seconds" in text(r)
    # other addresses are not affected
    assert login(client(hub), "throttled", users["throttled"]).status_code == 302
    time.sleep(wait + 0.5)
    assert login(s, "throttled", users["throttled"]).status_code == 302


def test_x_forwarded_for_from_the_client_does_not_escape_the_throttle(hub, users):
    s = client(hub)
    for i in range(THROTTLE["throttle_failed_logins"]):
        r = login(s, "spoofer", "wrong", **{"X-Forwarded-For": f"198.51.100.{i}"})
        assert r.status_code == 200 and "Invalid username or password" in text(r)
    r = login(
        s, "spoofer", "wrong", **{"X-Forwarded-For": "198.51.100.99", "X-Real-Ip": "1.2.3.4"}
    )
    assert r.status_code == 429


def test_a_throttled_address_cannot_lock_an_account(hub, users):
    attacker = client(hub)
    for _ in range(THROTTLE["throttle_failed_logins"]):
        login(attacker, "nobody-here", "wrong")
    for _ in range(5 * LOCK["allowed_failed_logins"]):
        assert login(attacker, "victim", "wrong").status_code == 429
    # the guesses were refused before any password was checked: the account is not locked
    assert login(client(hub), "victim", users["victim"]).status_code == 302
