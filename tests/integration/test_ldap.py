"""LDAP log-in against a real OpenLDAP server (Debian's slapd, tools/ldap_server.py) that
the module starts and seeds, over StartTLS with a certificate of the test's own CA.

One directory and one hub (local backend, ``auth.type: ldap``, a lookup account whose
password comes from a file, ``ml-team``'s group folder) for the module. Users log in
through the hub's form; the directory is changed between log-ins as an admin of the
directory would (ldapmodify as its root).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil

import pytest
from tornado import web

import ldaptest
from gputest import SchedulerClient, gpu_hub_config
from hubtest import new_password, token_api
from ldaptest import ldap_section
from tlstest import TestCA

pytestmark = pytest.mark.integration

ldap_server = ldaptest.ldap_server()

PASSWORDS = {
    "alice": new_password(),
    "bob": new_password(),
    "carol": new_password(),
    "erin": new_password(),
}
#: ml-team has a GPU profile of its own, a group folder and a GPU quota of 2
PROFILES = [
    {"name": "cpu", "display_name": "CPU only", "default": True},
    {"name": "small", "display_name": "Small", "cpu_limit": 0.5},
    {"name": "gpu", "display_name": "One GPU", "gpus": 1, "groups": ["ml-team"]},
]
GROUPS = {"ml-team": ["alice", "bob"], "dlhub-admins": ["carol"], "other": ["erin"]}


#: slapd with users, groups and a certificate for 127.0.0.1 signed by the test's CA
ca, directory = ldaptest.directory_fixtures(PASSWORDS, GROUPS)


@pytest.fixture(scope="module")
def reader_password_file(tmp_path_factory, directory):
    path = tmp_path_factory.mktemp("secret") / "bind-password"
    path.write_text(directory.reader_password + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def hub(hub_factory, directory, ca, reader_password_file):
    config = {
        "hub": {"log_level": "DEBUG"},
        "auth": {
            "type": "ldap",
            "admin_users": [],
            "ldap": ldap_section(
                directory,
                ca,
                lookup_dn_search_user=ldap_server.READER_DN,
                lookup_dn_search_password_file=str(reader_password_file),
            ),
        },
        **gpu_hub_config(PROFILES, count=2, quotas={"ml-team": 2}, default_quota=0),
        "volumes": {"groups": [{"group": "ml-team"}]},
        "culling": {"enabled": False},
    }
    return hub_factory(config, name="ldap")


def log_in(hub, name: str, password: str):
    """The hub's log-in form; returns (session, the POST's response)."""
    s = hub.session()
    s.get(s.url("/hub/login"))
    r = s.post_form("/hub/login", {"username": name, "password": password}, allow_redirects=False)
    s.username = name
    return s, r


def gpu_quota(hub, session) -> int:
    """The user's GPU quota as the GPU scheduler sees it (its API, with the user's token)."""
    r = SchedulerClient(hub).api(session.new_token("quota"), "GET", "capacity")
    assert r.status_code == 200, r.text
    return r.json()["quota"]


def has_group_folder(session, name: str, group: str) -> bool:
    """Whether the user's running server has the group's folder (its contents API, with a
    token of the user's: the server wants the XSRF header of cookie-authenticated calls)."""
    token = session.new_token("folder check")
    r = token_api(session.base, token, "GET", f"/user/{name}/api/contents/groups/{group}")
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def test_a_directory_user_logs_in_through_the_form_with_their_groups(hub):
    s, r = log_in(hub, "alice", PASSWORDS["alice"])
    assert r.status_code == 302, r.text
    model = s.me()
    assert model["name"] == "alice"
    assert model["groups"] == ["ml-team"]
    assert model["admin"] is False


def test_a_name_typed_in_capitals_is_the_same_user(hub):
    s, r = log_in(hub, " Alice", PASSWORDS["alice"])
    assert r.status_code == 302, r.text
    s.username = "alice"
    assert s.me()["name"] == "alice"


def test_a_wrong_password_is_refused_with_a_clear_message(hub):
    s, r = log_in(hub, "alice", "not-" + PASSWORDS["alice"])
    assert r.status_code == 403
    assert "Invalid username or password" in r.text
    assert not any(c.name == "jupyterhub-hub-login" for c in s.cookies)


def test_an_unknown_user_and_an_injection_are_refused(hub):
    for name in ("mallory", "alice)(uid=*", "*"):
        _, r = log_in(hub, name, "whatever")
        assert r.status_code == 403, name
        assert "Invalid username or password" in r.text


def test_a_user_in_no_allowed_group_is_refused(hub):
    # erin's password is right, but she is only in 'other'
    _, r = log_in(hub, "erin", PASSWORDS["erin"])
    assert r.status_code == 403
    assert "Invalid username or password" in r.text


def test_the_admin_group_makes_an_admin_and_leaving_it_ends_that(hub, directory):
    s, r = log_in(hub, "carol", PASSWORDS["carol"])
    assert r.status_code == 302
    assert s.me()["admin"] is True
    assert s.me()["groups"] == ["dlhub-admins"]
    # carol moves to ml-team in the directory; her next log-in is no admin's
    directory.add_member("ml-team", "carol")
    directory.add_member("dlhub-admins", "alice")  # the group keeps a member
    directory.remove_member("dlhub-admins", "carol")
    s, r = log_in(hub, "carol", PASSWORDS["carol"])
    assert r.status_code == 302
    assert s.me()["admin"] is False
    assert s.me()["groups"] == ["ml-team"]
    # as it was (carol stays in ml-team too)
    directory.add_member("dlhub-admins", "carol")
    directory.remove_member("dlhub-admins", "alice")


def test_the_group_folder_follows_the_directory_at_log_in_and_at_start(hub, directory):
    s, r = log_in(hub, "bob", PASSWORDS["bob"])
    assert r.status_code == 302
    assert s.me()["groups"] == ["ml-team"]
    form = s.spawn_form()
    assert 'value="gpu"' in form and "your quota of 2" in form  # ml-team's profile, quota
    assert gpu_quota(hub, s) == 2
    s.start_server("bob")
    assert has_group_folder(s, "bob", "ml-team")
    s.stop_server("bob")
    # bob moves from ml-team to vision (another allowed group) in the directory
    directory.add_group("vision", ["bob"])
    directory.remove_member("ml-team", "bob")
    # his next start reads the directory again (the lookup account): no ml-team folder
    s.start_server("bob")
    assert s.me()["groups"] == ["vision"]
    assert not has_group_folder(s, "bob", "ml-team")
    assert gpu_quota(hub, s) == 0
    s.stop_server("bob")
    form = s.spawn_form()
    assert 'value="small"' in form and 'value="gpu"' not in form
    s, r = log_in(hub, "bob", PASSWORDS["bob"])
    assert r.status_code == 302
    assert s.me()["groups"] == ["vision"]
    # out of every allowed group: his start is sent back to log in, and that is refused
    directory.add_member("vision", "alice")
    directory.remove_member("vision", "bob")
    r = s.api("POST", "/users/bob/server", json={})
    assert r.status_code == 403 and "login again" in r.text, r.text
    _, r = log_in(hub, "bob", PASSWORDS["bob"])
    assert r.status_code == 403
    # back in ml-team: the next log-in has it again
    directory.add_member("ml-team", "bob")
    s, r = log_in(hub, "bob", PASSWORDS["bob"])
    assert r.status_code == 302
    assert s.me()["groups"] == ["ml-team"]
    assert gpu_quota(hub, s) == 2


def test_a_user_removed_from_the_directory_cannot_log_in_or_start(hub, directory):
    directory.add_user("dave", "dave-" + PASSWORDS["alice"])
    directory.add_member("ml-team", "dave")
    s, r = log_in(hub, "dave", "dave-" + PASSWORDS["alice"])
    assert r.status_code == 302
    assert s.me()["groups"] == ["ml-team"]
    directory.remove_member("ml-team", "dave")
    directory.delete_user("dave")
    # the browser's session is sent back to log in before a start
    r = s.api("POST", "/users/dave/server", json={})
    assert r.status_code == 403, r.text
    assert "login again" in r.text
    assert "" not in s.api("GET", "/users/dave").json().get("servers", {"": None})
    _, r = log_in(hub, "dave", "dave-" + PASSWORDS["alice"])
    assert r.status_code == 403


def test_the_bind_password_and_users_passwords_are_not_logged(hub, directory):
    # the hub ran at DEBUG through every test above
    log = hub.log()
    assert "Attempting to bind" in log  # ldapauthenticator's debug lines are there
    assert directory.reader_password not in log
    for password in PASSWORDS.values():
        assert password not in log


# --- the authenticator alone against the directory: TLS is checked ---------------------------


def authenticate(config: dict, name: str, password: str):
    """``DirectoryAuthenticator.authenticate`` with the traits ``auth.ldap`` maps to, in a
    thread of its own (a test after the browser tests has a loop in the main thread)."""
    from traitlets.config import Config

    from hub_config.config import validate
    from hub_config.ldap import ldap_traits
    from hub_config.ldap_auth import DirectoryAuthenticator

    cfg = validate({"auth": {"type": "ldap", "admin_users": [], "ldap": config}})
    c = Config()
    for section, values in ldap_traits(cfg["auth"]).items():
        for key, value in values.items():
            setattr(c[section], key, value)
    authenticator = DirectoryAuthenticator(config=c)
    authenticator.log = logging.getLogger("test-ldap")

    def run():
        return asyncio.run(
            authenticator.get_authenticated_user(None, {"username": name, "password": password})
        )

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(60)


def refused(caplog, config: dict) -> str:
    """Log in as alice with ``config``: a 503 for the user; the log's reason."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="test-ldap"):
        with pytest.raises(web.HTTPError) as refusal:
            authenticate(config, "alice", PASSWORDS["alice"])
    assert refusal.value.status_code == 503
    assert "cannot be reached or its certificate is not trusted" in refusal.value.log_message
    return caplog.text


def test_ldaps_works_with_the_ca(directory, ca):
    config = ldap_section(directory, ca, tls="ldaps", server_port=directory.ldaps_port)
    model = authenticate(config, "alice", PASSWORDS["alice"])
    assert model["name"] == "alice" and "ml-team" in model["groups"]


def test_a_server_certificate_of_another_ca_is_refused(directory, ca, tmp_path, caplog):
    other = TestCA(tmp_path / "other", name="someone else's CA")
    for tls, port in (("starttls", directory.port), ("ldaps", directory.ldaps_port)):
        config = ldap_section(directory, ca, tls=tls, server_port=port)
        config["ca_file"] = str(other.ca_file)
        assert "CERTIFICATE_VERIFY_FAILED" in refused(caplog, config), tls


def test_a_server_name_not_in_the_certificate_is_refused(directory, ca, tmp_path, caplog):
    cert, key = ca.issue("elsewhere", hosts=("ldap.elsewhere.test",))
    other = ldap_server.LdapServer(
        tmp_path / "slapd", tls={"cert": cert, "key": key, "ca": ca.ca_file}
    )
    other.start({"alice": PASSWORDS["alice"]}, {"ml-team": ["alice"]})
    try:
        for tls, port in (("starttls", other.port), ("ldaps", other.ldaps_port)):
            config = ldap_section(other, ca, tls=tls, server_port=port)
            assert "doesn't match any name in ['127.0.0.1']" in refused(caplog, config), tls
    finally:
        other.stop()
        shutil.rmtree(tmp_path / "slapd", ignore_errors=True)


def test_an_unreachable_directory_gives_a_clear_page(hub, directory):
    # last: the directory goes away
    directory.stop()
    _, r = log_in(hub, "alice", PASSWORDS["alice"])
    assert r.status_code == 503
    assert "cannot be reached or its certificate is not trusted" in r.text
