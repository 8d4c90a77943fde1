"""Checklist item 5 (the first admin): an admin name nobody has claimed cannot be signed up
from the web; `dlhub up` prints a one-time setup link (once, in its banner; the token in the
link's fragment, which browsers never send), the token is a 0600 file in the data dir, it
works once, and a later `dlhub up` replaces it.

One hub for the module, run as `dlhub up` (a subprocess, stopped by its pid), with three
admin names: a used token is tried on the second one, `dlhub admin` makes the third.
"""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from hub_config import first_admin
from hubtest import new_password, setup_token_in

pytestmark = pytest.mark.integration

UP = [sys.executable, "-m", "hub_config", "up"]


@pytest.fixture(scope="module")
def hub(hub_factory):
    config = {"auth": {"admin_users": ["admin", "ada", "grace"]}, "culling": {"enabled": False}}
    hub = hub_factory(config, name="firstadmin", start=False)
    return hub.start(command=UP)


def banner_token(hub, start: int = 0) -> str:
    """The token of the latest banner in the hub's log (from byte ``start`` on)."""
    return setup_token_in(hub.log()[start:])


def setup_form(hub, token: str, name: str, password: str, confirmation: str | None = None):
    s = hub.session()
    s.get(s.url("/hub/first-admin"))
    return s.post_form(
        "/hub/first-admin",
        {
            "token": token,
            "username": name,
            "password": password,
            "password_confirmation": password if confirmation is None else confirmation,
        },
    )


def test_the_banner_holds_a_one_time_link_kept_0600(hub):
    log = hub.log()
    token = banner_token(hub)
    assert f"First admin: open {hub.url}/hub/first-admin#token={token}" in log
    assert log.count(token) == 1, "the token is printed once, in the banner, nowhere else"
    path = first_admin.token_path(hub.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == token


def test_an_unclaimed_admin_name_cannot_be_signed_up(hub):
    for name in ("admin", "Admin", "ada"):
        s = hub.session()
        s.get(s.url("/hub/signup"))
        password = new_password()
        r = s.post_form(
            "/hub/signup",
            {"username": name, "signup_password": password,
             "signup_password_confirmation": password},
        )  # fmt: skip
        assert r.status_code == 403, name
        assert "admin name" in r.text and "setup link" in r.text
    s = hub.session()
    login = {"username": "admin", "password": password}
    assert s.post_form("/hub/login", login, allow_redirects=False).status_code != 302
    # the setup page's form without the token, or with a wrong one
    page = s.get(s.url("/hub/first-admin"))
    assert page.status_code == 200 and 'id="token_input"' in page.text
    r = setup_form(hub, "not-the-token", "admin", new_password())
    assert r.status_code == 403 and "not valid" in r.text
    assert setup_form(hub, "", "admin", new_password()).status_code == 403


def test_the_link_makes_one_admin_once(hub):
    token = banner_token(hub)
    # the form without the XSRF token: refused, the link is not used up
    password = new_password()
    form = {"token": token, "username": "admin", "password": password}
    s = hub.session()
    r = s.post(s.url("/hub/first-admin"), data={**form, "password_confirmation": password})
    assert r.status_code == 403 and first_admin.token_path(hub.data_dir).exists()
    # a refused password does not use up the link
    r = setup_form(hub, token, "admin", "short")
    assert r.status_code == 400 and "Choose another password" in r.text
    r = setup_form(hub, token, "admin", new_password(), new_password())
    assert r.status_code == 400 and "differ" in r.text
    r = setup_form(hub, token, "root", new_password())
    assert r.status_code == 400  # not an admin name
    password = new_password()
    r = setup_form(hub, token, "admin", password)
    assert r.status_code == 200 and "is ready" in r.text
    assert not first_admin.token_path(hub.data_dir).exists()
    admin = hub.session()
    admin.login("admin", password)
    assert admin.get(admin.url("/hub/admin")).status_code == 200
    # used: the same link does not make the second admin
    r = setup_form(hub, token, "ada", new_password())
    assert r.status_code == 403 and "not valid" in r.text


def dlhub_admin(hub, name: str, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hub_config", "admin", name],
        input=password + "\n",
        cwd=hub.workdir,
        env=hub.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dlhub_admin_makes_an_admin_on_the_command_line(hub):
    refused = dlhub_admin(hub, "mallory", new_password())
    assert refused.returncode == 2 and "not in auth.admin_users" in refused.stderr
    refused = dlhub_admin(hub, "grace", "short")
    assert refused.returncode == 1 and "password was refused" in refused.stderr
    password = new_password()
    done = dlhub_admin(hub, "grace", password)
    assert done.returncode == 0, done.stderr
    assert f"log in at {hub.url}/hub/login" in done.stdout
    grace = hub.session()
    grace.login("grace", password)  # the running hub, no restart
    assert grace.get(grace.url("/hub/admin")).status_code == 200


def test_a_restart_prints_a_new_link_while_an_admin_has_no_account(hub):
    old = banner_token(hub)
    hub.stop()
    start = len(hub.log())
    hub.start(command=UP)
    new = banner_token(hub, start)
    assert new != old
    assert setup_form(hub, old, "ada", new_password()).status_code == 403
    assert setup_form(hub, new, "ada", new_password()).status_code == 200
    # every admin has an account: the next banner says where to log in, and no token is left
    hub.stop()
    start = len(hub.log())
    hub.start(command=UP)
    banner = hub.log()[start:]
    assert "first-admin#token=" not in banner
    assert f"Admins (admin, ada, grace) log in at {hub.url}/hub/login." in banner
    assert not first_admin.token_path(hub.data_dir).exists()
    assert hub.session().get(hub.url + "/hub/first-admin").status_code == 404
    assert setup_form(hub, new, "ada", new_password()).status_code == 404
