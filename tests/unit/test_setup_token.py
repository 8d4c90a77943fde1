"""The first admin's setup token, the `dlhub up` banner, and the authorize page's groups."""

from __future__ import annotations

import io
import sqlite3
import stat
from datetime import datetime
from types import SimpleNamespace

from hub_config import first_admin
from hub_config.__main__ import banner, first_admin_link, read_password
from hub_config.approval import group_accounts, path_part
from hub_config.config import load_platform_config


def test_issue_makes_a_private_file_and_replaces_the_last_token(tmp_path):
    path = first_admin.token_path(tmp_path)
    one = first_admin.issue(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(one) >= 40 and path.read_text() == one
    two = first_admin.issue(path)
    assert two != one
    assert not first_admin.matches(path, one) and first_admin.matches(path, two)
    assert [p.name for p in tmp_path.iterdir()] == [first_admin.TOKEN_FILE]


def test_take_works_once_and_put_back_restores(tmp_path):
    path = first_admin.token_path(tmp_path)
    token = first_admin.issue(path)
    for wrong in ("", None, token[:-1], token + "x", "ü" * 5):
        assert not first_admin.take(path, wrong)
    assert first_admin.take(path, token)
    assert not path.exists()
    assert not first_admin.take(path, token)
    first_admin.put_back(path, token)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first_admin.take(path, token)
    # a newer token made meanwhile is kept
    newer = first_admin.issue(path)
    first_admin.put_back(path, token)
    assert first_admin.matches(path, newer)


def test_the_link_keeps_the_token_in_the_fragment():
    link = first_admin.setup_link("http://127.0.0.1:8000/", "abc")
    assert link == "http://127.0.0.1:8000/hub/first-admin#token=abc"


def test_unclaimed_admins_reads_the_sign_ups(tmp_path):
    db_file = tmp_path / "hub.sqlite"
    url = f"sqlite:///{db_file}"
    assert first_admin.unclaimed_admins(url, ["b", "a"]) == ["a", "b"]
    assert not db_file.exists(), "a missing database is not created"
    db = sqlite3.connect(db_file)
    db.execute("CREATE TABLE other (x)")
    db.commit()
    assert first_admin.unclaimed_admins(url, ["a"]) == ["a"]  # no sign-ups table yet
    db.execute("CREATE TABLE users_info (username TEXT)")
    db.execute("INSERT INTO users_info VALUES ('a'), ('z')")
    db.commit()
    db.close()
    assert first_admin.unclaimed_admins(url, ["a", "b"]) == ["b"]
    assert first_admin.unclaimed_admins(url, []) == []


def test_dlhub_up_banner_and_link(tmp_path):
    cfg = load_platform_config(None)
    link = first_admin_link(cfg, tmp_path)
    token = first_admin.token_path(tmp_path).read_text()
    assert link == f"http://127.0.0.1:8000/hub/first-admin#token={token}"
    text = banner(cfg, tmp_path, link)
    assert f"First admin: open {link}\n" in text
    assert text.count(token) == 1
    # every admin has an account: no link, no token file, where to log in instead
    db = sqlite3.connect(tmp_path / "jupyterhub.sqlite")
    db.execute("CREATE TABLE users_info (username TEXT)")
    db.execute("INSERT INTO users_info VALUES ('admin')")
    db.commit()
    db.close()
    assert first_admin_link(cfg, tmp_path) is None
    assert not first_admin.token_path(tmp_path).exists()
    text = banner(cfg, tmp_path, None)
    assert "first-admin" not in text
    assert "Admins (admin) log in at http://127.0.0.1:8000/hub/login." in text


def test_authorize_page_groups():
    def info(name, ok):
        return SimpleNamespace(username=name, is_authorized=ok, email=None, has_2fa=False)

    when = datetime(2026, 1, 2, 3, 4)
    infos = [info("c", True), info("a", False), info("b", True), info("d", True)]
    groups = group_accounts(infos, {"b": None, "c": when})
    assert [r.name for r in groups["pending"]] == ["a"]
    # approved and never logged in: no activity, or no hub user at all
    assert [r.name for r in groups["never"]] == ["b", "d"]
    assert [(r.name, r.last_activity) for r in groups["active"]] == [("c", when)]


def test_a_name_is_one_path_segment():
    assert path_part("..%2fx") == "..%252fx"
    assert path_part("a/b c") == "a%2Fb%20c"


def test_dlhub_admin_reads_the_password_from_stdin():
    assert read_password(io.StringIO("pw with spaces \r\nnext\n")) == "pw with spaces "
