"""Checklist item 5 (forms): approving, discarding and changing a password are POSTs that
carry the XSRF token; a GET of the old links changes nothing; unknown or odd names are a
4xx page, never a 500. The authorize page and the navigation show admins the pending
sign-ups and the approved accounts that never logged in.

Account forms do not depend on the backend: one local hub for the module. The state of an
account is read from the hub's database itself, not from the pages under test.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

import pytest

from hubtest import new_password

pytestmark = pytest.mark.integration

#: names that are no account, some of them shaped to confuse a path or a template
ODD_NAMES = ["nobody", "..%2fx", "../x", "%00", "a" * 300, "zoë", "<b>x</b>", "x\ty"]


@pytest.fixture(scope="module")
def hub(hub_factory):
    return hub_factory({"culling": {"enabled": False}}, name="forms")


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


def approved(hub, name: str) -> bool | None:
    """The account's approval in the hub's database; None when there is no account."""
    db = sqlite3.connect(hub.data_dir / "jupyterhub.sqlite")
    try:
        row = db.execute("SELECT is_authorized FROM users_info WHERE username = ?", (name,))
        found = row.fetchone()
    finally:
        db.close()
    return None if found is None else bool(found[0])


def pending(hub, name: str):
    """A new sign-up ``name`` (not approved); returns its password."""
    password = new_password()
    s = hub.session()
    s.signup(name, password)
    assert approved(hub, name) is False
    return password


def test_get_of_the_approve_and_discard_links_changes_nothing(hub, admin):
    pending(hub, "getter")
    for path in ("/hub/authorize/getter", "/hub/discard/getter"):
        r = admin.get(admin.url(path), headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 200, path
        # the page asks, with a form that POSTs
        assert 'method="post"' in r.text and 'name="_xsrf"' in r.text
        assert approved(hub, "getter") is False, path


def test_a_post_without_the_xsrf_token_is_refused(hub, admin):
    pending(hub, "noxsrf")
    for path, data in [
        ("/hub/authorize/noxsrf", {"action": "approve"}),
        ("/hub/discard/noxsrf", {"action": "discard"}),
    ]:
        r = admin.post(admin.url(path), data=data, allow_redirects=False)
        assert r.status_code == 403, (path, r.status_code)
        assert "_xsrf" in r.text
        # a wrong token is no better
        r = admin.post(admin.url(path), data={**data, "_xsrf": "forged"}, allow_redirects=False)
        assert r.status_code == 403
        assert approved(hub, "noxsrf") is False
    # another site's page, even with the token: refused (Sec-Fetch-Site, defence in depth)
    r = admin.post(
        admin.url("/hub/authorize/noxsrf"),
        data={"action": "approve", "_xsrf": admin.xsrf()},
        headers={"Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
    )
    assert r.status_code == 403
    assert "must come from the hub" in r.text
    assert approved(hub, "noxsrf") is False


def test_approve_revoke_and_discard_are_for_admins(hub, admin):
    password = pending(hub, "carol")
    bob = hub.approved_user(admin, "bob")
    # a user who is not an admin, with a valid token of their own: 403
    for path, action in [("/hub/authorize/carol", "approve"), ("/hub/discard/carol", "discard")]:
        r = bob.post_form(path, {"action": action}, allow_redirects=False)
        assert r.status_code == 403, path
    r = bob.post_form("/hub/authorize/bob", {"action": "approve"}, allow_redirects=False)
    assert r.status_code == 403  # no self-approval either
    assert approved(hub, "carol") is False
    # the admin, with the token: it works, and goes back to the list
    r = admin.post_form("/hub/authorize/carol", {"action": "approve"}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].endswith("/hub/authorize")
    assert approved(hub, "carol") is True
    # the same form sent again does not undo it
    admin.post_form("/hub/authorize/carol", {"action": "approve"}).raise_for_status()
    assert approved(hub, "carol") is True
    hub.session().login("carol", password)
    # an approved account is not discarded: revoke first
    r = admin.post_form("/hub/discard/carol", {"action": "discard"}, allow_redirects=False)
    assert r.status_code == 409 and "revoke" in r.text
    admin.post_form("/hub/authorize/carol", {"action": "revoke"}).raise_for_status()
    assert approved(hub, "carol") is False
    admin.post_form("/hub/discard/carol", {"action": "discard"}).raise_for_status()
    assert approved(hub, "carol") is None
    r = admin.post_form("/hub/authorize/bob", {"action": "toggle"}, allow_redirects=False)
    assert r.status_code == 400
    # an admin does not lock themselves out
    r = admin.post_form("/hub/authorize/admin", {"action": "revoke"}, allow_redirects=False)
    assert r.status_code == 409 and approved(hub, "admin") is True


@pytest.mark.parametrize("name", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_unknown_and_odd_names_are_a_clear_4xx(hub, admin, name):
    segment = quote(name, safe="")
    for path in (f"/hub/authorize/{segment}", f"/hub/discard/{segment}"):
        r = admin.get(admin.url(path))
        assert r.status_code == 404, (path, r.status_code)
        assert "no account named" in r.text
        r = admin.post_form(path, {"action": "approve"}, allow_redirects=False)
        assert r.status_code == 404, (path, r.status_code)
    path = f"/hub/change-password/{segment}"
    assert admin.get(admin.url(path)).status_code == 404
    r = admin.post_form(path, {"new_password": "x" * 20, "new_password_confirmation": "x" * 20})
    assert r.status_code == 404


def test_the_raw_encoded_slash_of_the_issue_is_a_404(hub, admin):
    # the issue's `..%2fx`, sent as it was, unquoted once by the server: `../x`
    for path in ("/hub/authorize/..%2fx", "/hub/discard/..%2fx", "/hub/change-password/..%2fx"):
        r = admin.get(admin.url(path))
        assert r.status_code == 404, (path, r.status_code)


def test_change_password_needs_the_xsrf_token(hub, admin):
    name = "dora"
    pending(hub, name)
    admin.approve(name)
    old = new_password()
    admin.post_form(
        f"/hub/change-password/{name}", {"new_password": old, "new_password_confirmation": old}
    ).raise_for_status()
    dora = hub.session()
    dora.login(name, old)
    new = new_password()
    own = {"old_password": old, "new_password": new, "new_password_confirmation": new}
    # the user's own form and the admin's, without the token: refused, nothing changes
    assert dora.post(dora.url("/hub/change-password"), data=own).status_code == 403
    r = admin.post(
        admin.url(f"/hub/change-password/{name}"),
        data={"new_password": new, "new_password_confirmation": new},
    )
    assert r.status_code == 403
    hub.session().login(name, old)
    # with it: changed
    r = dora.post_form("/hub/change-password", own)
    assert r.status_code == 200 and "changed successfully" in r.text
    hub.session().login(name, new)


def test_the_admin_sees_pending_and_never_logged_in_accounts(hub, admin):
    pending(hub, "erin")
    pending(hub, "frank")
    admin.approve("frank")
    page = admin.get(admin.url("/hub/authorize")).text
    waiting = page[page.index('id="pending-accounts"') : page.index('id="never"')]
    never = page[page.index('id="never-logged-in"') : page.index('id="active"')]
    active = page[page.index('id="approved-accounts"') :]
    assert ">erin<" in waiting and ">frank<" not in waiting
    assert ">frank<" in never and ">erin<" not in never
    assert ">admin<" in active  # the admin has logged in
    # every change on the page is a POST form with the token
    assert 'href="/hub/authorize/' not in page and 'href="/hub/discard/' not in page
    assert page.count('name="_xsrf"') == page.count('method="post"') > 0
    # the navigation bar, on any hub page, counts the pending sign-ups for admins
    n = waiting.count("<tr>") - 1  # the rows, less the header
    home = admin.get(admin.url("/hub/home")).text
    assert 'id="dlhub-signups"' in home and f"{n} pending" in home
    frank = hub.session()
    assert 'id="dlhub-signups"' not in frank.get(frank.url("/hub/login")).text


def test_an_admin_with_pending_sign_ups_lands_on_the_hub_home(hub, admin):
    pending(hub, "gina")
    password = new_password()
    form = {"new_password": password, "new_password_confirmation": password}
    admin.post_form("/hub/change-password/admin", form).raise_for_status()
    r = hub.session().login("admin", password)
    assert r.headers["Location"].endswith("/hub/home")


def test_a_sign_up_as_an_admin_made_in_the_hub_waits_for_approval(hub, admin):
    # an admin made in the admin panel, the API or a roster has no password yet; whoever
    # signs up first with that name must not become admin without an admin's approval
    r = admin.api("POST", "/users/chief", json={"admin": True})
    assert r.status_code == 201, r.text
    password = pending(hub, "chief")
    with pytest.raises(AssertionError, match="login of chief failed"):
        hub.session().login("chief", password)
    # a known user who is not an admin is still approved at sign-up (approve_known_users)
    assert admin.api("POST", "/users/known", json={}).status_code == 201
    hub.session().signup("known", new_password())
    assert approved(hub, "known") is True
