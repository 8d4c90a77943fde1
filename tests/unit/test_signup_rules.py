"""The sign-up limits' rules (in-memory database, no hub): the per-address sign-up
throttle's traits, and which sign-ups the cap on waiting sign-ups refuses."""

from __future__ import annotations

import pytest
from jupyterhub import orm

from hub_config.auth import DlhubAuthenticator
from hub_config.config import validate
from hub_config.mapping import auth_traits


def authenticator(**traits) -> DlhubAuthenticator:
    db = orm.new_session_factory("sqlite://")()
    return DlhubAuthenticator(db=db, minimum_password_length=8, **traits)


def test_the_cap_refuses_only_signups_that_would_wait():
    auth = authenticator(max_pending_signups=2, allowed_users={"known"})
    assert auth.pending_signups() == 0
    for name in ("one", "two"):
        assert auth.create_user(name, "a-long-pass-123") is not None
    assert auth.pending_signups() == 2
    assert auth.pending_full("three")
    assert auth.pending_full("Three")  # as typed: normalised first
    assert not auth.pending_full("known")  # approved at sign-up: does not wait
    auth.get_user("one").is_authorized = True  # an admin approves one
    auth.db.commit()
    assert auth.pending_signups() == 1
    assert not auth.pending_full("three")


@pytest.mark.parametrize("traits", [{"max_pending_signups": 0}, {"open_signup": True}])
def test_the_cap_is_off_at_0_and_with_open_signup(traits):
    auth = authenticator(**{"max_pending_signups": 1, **traits})
    auth.create_user("one", "a-long-pass-123")
    assert not auth.pending_full("two")


def test_the_signup_throttle_counts_every_signup_in_the_login_window():
    auth = authenticator(signup_throttle_attempts=2, login_throttle_seconds=300)
    window = auth.signup_throttle
    assert (window.limit, window.window) == (2, 300)
    window.fail("203.0.113.9")
    assert window.retry_after("203.0.113.9") == 0
    window.fail("203.0.113.9")
    assert 299 <= window.retry_after("203.0.113.9") <= 300
    assert window.retry_after("203.0.113.10") == 0


def test_config_keys_and_defaults(tmp_path):
    cfg = validate({})
    assert (cfg["auth"]["throttle_signups"], cfg["auth"]["max_pending_signups"]) == (10, 500)
    traits = auth_traits(cfg, tmp_path)["DlhubAuthenticator"]
    assert traits["signup_throttle_attempts"] == 10
    assert traits["max_pending_signups"] == 500
    assert traits["login_throttle_seconds"] == 600
    cfg = validate({"auth": {"throttle_signups": 0, "max_pending_signups": 0}})
    traits = auth_traits(cfg, tmp_path)["DlhubAuthenticator"]
    assert (traits["signup_throttle_attempts"], traits["max_pending_signups"]) == (0, 0)
