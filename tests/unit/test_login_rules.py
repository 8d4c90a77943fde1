"""The pure rules behind sign-up and log-in: usernames, long passwords, the per-address
throttle (with a clock that tests move), the client address, the cookie options."""

from __future__ import annotations

import bcrypt
import pytest

from hub_config import passwords, usernames
from hub_config.mapping import cookie_options
from hub_config.throttle import FailureWindow, client_address, parse_networks


@pytest.mark.parametrize(
    "name", ["a", "alice", "bob.smith", "x_y-z", "0day", "a" * 32, "a.b.c", "admin"]
)
def test_allowed_usernames(name):
    assert usernames.problem(name) is None


@pytest.mark.parametrize(
    "name, says",
    [
        ("", "Please choose a username"),
        ("a" * 33, "has 33 characters"),
        ("x" * 10_000_000, "has 10000000 characters"),
        ("a..b", "cannot contain '..'"),
        ("..", "cannot contain '..'"),
        ("..%2fx", "cannot contain '..'"),
        ("a%2fb", "'a%2fb' is not allowed"),
        ("a/b", "'a/b' is not allowed"),
        ("a\tb", "'a\\tb' is not allowed"),
        ("a\rb", "'a\\rb' is not allowed"),
        ("a\nb", "'a\\nb' is not allowed"),
        ("a b", "'a b' is not allowed"),
        ("Alice", "'Alice' is not allowed"),
        ("ünï-çødé", "is not allowed"),
        (".hidden", "is not allowed"),
        ("-x", "is not allowed"),
        ("a@b", "is not allowed"),
    ],
)
def test_refused_usernames_say_what_is_allowed(name, says):
    problem = usernames.problem(name)
    assert says in problem
    assert usernames.RULE in problem
    assert len(problem) < 300  # a huge name is never echoed


def test_usernames_fit_the_group_rule_of_the_roster():
    from hub_config.roster import GROUP_RE

    # every username is also a valid group name (a user's own group, a roster line)
    for name in ["a", "bob.smith", "x_y-z", "a" * 32]:
        assert GROUP_RE.match(name)


def test_short_passwords_are_hashed_as_they_always_were():
    for pw in ["pw", "x" * 72, "é" * 36]:  # up to 72 bytes
        assert passwords.bcrypt_secret(pw) == pw
    # a hash NativeAuthenticator stored still matches
    stored = bcrypt.hashpw(b"old-password", bcrypt.gensalt(4))
    assert bcrypt.checkpw(passwords.bcrypt_secret("old-password").encode(), stored)


@pytest.mark.parametrize("length", [73, 1000, 1024, 100_000])
def test_long_passwords_become_secrets_bcrypt_takes(length):
    secret = passwords.bcrypt_secret("p" * length)
    assert len(secret.encode()) <= passwords.BCRYPT_MAX_BYTES
    assert len(secret) > 64  # longer than any minimum_password_length
    assert passwords.bcrypt_secret(secret) == secret  # idempotent
    stored = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(4))
    assert bcrypt.checkpw(passwords.bcrypt_secret("p" * length).encode(), stored)


def test_every_character_of_a_long_password_counts():
    base = "p" * 200
    assert passwords.bcrypt_secret(base) != passwords.bcrypt_secret(base[:-1] + "q")
    assert passwords.bcrypt_secret("x" * 72 + "a") != passwords.bcrypt_secret("x" * 72 + "b")
    # multi-byte characters count in bytes: 37 two-byte characters are 74 bytes
    assert passwords.bcrypt_secret("é" * 37).startswith(passwords.PREHASH_PREFIX)


def test_password_length_limit():
    assert passwords.problem("p" * passwords.MAX_LENGTH) is None
    problem = passwords.problem("p" * 100_000)
    assert "100000 characters" in problem and "at most 1024" in problem


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_throttle_refuses_after_limit_until_the_oldest_failure_ages():
    clock = Clock()
    window = FailureWindow(limit=3, window=60, clock=clock)
    for _ in range(2):
        window.fail("1.2.3.4")
        clock.now += 10
    assert window.retry_after("1.2.3.4") == 0
    window.fail("1.2.3.4")  # third failure at t=20 (first at t=0)
    assert window.retry_after("1.2.3.4") == 60 - 20
    assert window.retry_after("5.6.7.8") == 0  # other addresses are not affected
    clock.now += 39.5
    assert window.retry_after("1.2.3.4") == 1
    clock.now += 0.5  # the first failure is 60 s old: one more try
    assert window.retry_after("1.2.3.4") == 0
    window.fail("1.2.3.4")
    assert window.retry_after("1.2.3.4") == 10  # until the second failure (t=10) ages
    clock.now += 1000
    assert window.retry_after("1.2.3.4") == 0
    assert len(window) == 0  # forgotten once old


def test_throttle_off_and_bounded():
    off = FailureWindow(limit=0, window=60)
    for _ in range(100):
        off.fail("a")
    assert off.retry_after("a") == 0 and len(off) == 0
    clock = Clock()
    small = FailureWindow(limit=2, window=60, clock=clock, max_keys=100)
    for i in range(1000):
        small.fail(f"10.0.{i // 256}.{i % 256}")
    assert len(small) == 100


def test_client_address_is_the_entry_our_proxy_added():
    assert client_address(None, "127.0.0.1") == "127.0.0.1"
    assert client_address("", "127.0.0.1") == "127.0.0.1"
    assert client_address("203.0.113.9", "127.0.0.1") == "203.0.113.9"
    # whatever a client puts in front of the proxy's entry is ignored
    assert client_address("1.1.1.1, 2.2.2.2, 203.0.113.9", "127.0.0.1") == "203.0.113.9"
    trusted = parse_networks(["10.0.0.0/8", "192.0.2.7"])
    # entries of trusted proxies are skipped from the right
    assert client_address("1.1.1.1, 203.0.113.9, 10.1.2.3", "127.0.0.1", trusted) == (
        "203.0.113.9"
    )
    assert client_address("203.0.113.9, 192.0.2.7", "127.0.0.1", trusted) == "203.0.113.9"
    assert client_address("10.0.0.1, 10.0.0.2", "127.0.0.1", trusted) == "10.0.0.1"
    with pytest.raises(ValueError, match="'nope' is not an IP address"):
        parse_networks(["nope"])


def test_cookie_options():
    assert cookie_options("http://0.0.0.0:8000") == {"samesite": "Lax"}
    assert cookie_options("https://hub.example.org/dlhub/") == {
        "samesite": "Lax",
        "secure": True,
    }


# --- the authenticator (in-memory database, no hub) -----------------------------------


@pytest.fixture
def auth():
    from jupyterhub import orm

    from hub_config.auth import DlhubAuthenticator

    db = orm.new_session_factory("sqlite://")()
    return DlhubAuthenticator(
        db=db,
        open_signup=True,
        minimum_password_length=8,
        allowed_failed_logins=2,
        seconds_before_next_try=60,
    )


def test_authenticator_refuses_odd_names(auth):
    assert auth.validate_username("alice")
    for name in ["a\tb", "a/b", "..%2fx", "ünï", "x" * 33]:
        assert not auth.validate_username(name)
        assert auth.create_user(name, "a-long-pass-123") is None
    assert auth.username_problem("Alice") is None  # lower-cased as JupyterHub does


@pytest.mark.parametrize("length", [73])
def test_authenticator_hashes_passwords_of_any_length(auth, length):
    password = "k" * length
    assert auth.create_user(f"u{length}", password) is not None
    info = auth.get_user(f"u{length}")
    assert info.is_valid_password(password)
    assert not info.is_valid_password(password[:-1] + "j")
    assert not info.is_valid_password("k" * 100_000)
    assert auth.change_password(f"u{length}", "m" * 600)
    assert auth.get_user(f"u{length}").is_valid_password("m" * 600)


def test_authenticator_refuses_passwords_over_the_limit(auth):
    assert auth.create_user("huge", "p" * 1025) is None
    assert "at most 1024" in auth.password_problem("p" * 1025)
    assert "at least 8" in auth.password_problem("short")
    auth.create_user("changer", "first-password-1")
    assert auth.change_password("changer", "p" * 1025) is None


def test_lock_is_told_to_the_right_password_only_and_counts_again_after(auth):
    from datetime import datetime, timedelta

    auth.create_user("locked", "right-password-1")
    for _ in range(2):
        auth.add_login_attempt("locked")
    assert 59 <= auth.lock_remaining("locked") <= 60
    assert auth.is_blocked("locked")
    assert auth.locked_for("locked", "wrong") == 0
    assert 59 <= auth.locked_for("Locked", "right-password-1") <= 60
    # the lock runs out (NativeAuthenticator's timedelta.seconds forgot whole days)
    auth.login_attempts["locked"]["time"] = datetime.now() - timedelta(days=1, seconds=1)
    assert not auth.is_blocked("locked")
    auth.add_login_attempt("locked")  # one more failure does not lock it again
    assert not auth.is_blocked("locked") and auth.lock_remaining("locked") == 0
