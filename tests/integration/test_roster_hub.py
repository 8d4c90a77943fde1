"""`dlhub roster` against a real hub: import, re-import, edits, bad rows, rollback, export.

Every command runs as the real console script with the admin's token in the environment
only; each run also checks that the token shows up in neither stdout nor stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub_config.roster import parse
from hubtest import free_port, new_password, token_api

pytestmark = pytest.mark.integration

DLHUB = Path(sys.executable).parent / "dlhub"

ROSTER = """\
# spring term
username,groups,admin
alice,staff,yes
bob,course-a,
carol,course-a;staff,no
"""


@pytest.fixture(scope="module")
def hub(hub_factory):
    return hub_factory({"culling": {"enabled": False}})


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def token(admin):
    return admin.new_token("roster tests")


def dlhub(hub, token, *args, config=False):
    """Run ``dlhub roster ARGS`` as a user would; returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_TOKEN")}
    if token is not None:
        env["DLHUB_API_TOKEN"] = token
    where = ["--config", str(hub.config_file)] if config else ["--hub", hub.url]
    done = subprocess.run(
        [str(DLHUB), "roster", *args, *where],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if token:
        assert token not in done.stdout + done.stderr
    return done


def state(hub, token) -> tuple[dict, set]:
    """{user: (admin, sorted groups)} and the set of group names, read through the API."""
    users = token_api(hub.url, token, "GET", "/hub/api/users").json()
    groups = token_api(hub.url, token, "GET", "/hub/api/groups").json()
    return (
        {u["name"]: (u["admin"], sorted(u["groups"])) for u in users},
        {g["name"] for g in groups},
    )


def write(tmp_path, text, name="roster.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_missing_token_is_one_line(hub, tmp_path):
    done = dlhub(hub, None, "import", write(tmp_path, ROSTER))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert f"make one at {hub.url}/hub/token" in done.stderr


def test_unreachable_hub_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "DLHUB_API_TOKEN": "secret-token-value"}
    done = subprocess.run(
        [str(DLHUB), "roster", "import", write(tmp_path, ROSTER), "--hub", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"dlhub roster: cannot reach the hub at {url} (GET /hub/api/user): "
        "[Errno 111] Connection refused\n"
    )


def test_import_reimport_and_move(hub, token, tmp_path):
    before, _ = state(hub, token)
    path = write(tmp_path, ROSTER)

    dry = dlhub(hub, token, "import", path, "--dry-run", config=True)
    assert dry.returncode == 0, dry.stderr
    assert "create user alice (admin)" in dry.stdout
    assert "dry run: 7 change(s) not applied" in dry.stdout
    assert state(hub, token)[0] == before

    # the hub address comes from the platform config (hub.bind_url)
    done = dlhub(hub, token, "import", path, config=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "create user alice (admin)",
        "create user bob",
        "create user carol",
        "create group course-a",
        "create group staff",
        "add to group course-a: bob, carol",
        "add to group staff: alice, carol",
        "applied 7 change(s)",
    ]
    users, groups = state(hub, token)
    assert users == {
        **before,
        "alice": (True, ["staff"]),
        "bob": (False, ["course-a"]),
        "carol": (False, ["course-a", "staff"]),
    }
    assert {"course-a", "staff"} <= groups

    again = dlhub(hub, token, "import", path)
    assert (again.returncode, again.stdout) == (0, "nothing to change\n")
    assert state(hub, token) == (users, groups)

    # bob moves from course-a to staff, alice stops being an admin
    moved = ROSTER.replace("bob,course-a,", "bob,staff,").replace(",yes", ",")
    done = dlhub(hub, token, "import", write(tmp_path, moved))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "take admin rights from alice",
        "remove from group course-a: bob",
        "add to group staff: bob",
        "applied 3 change(s)",
    ]
    assert state(hub, token) == (
        {
            **users,
            "alice": (False, ["staff"]),
            "bob": (False, ["staff"]),
        },
        groups,
    )


def test_bad_rows_are_all_reported_and_nothing_applied(hub, token, tmp_path):
    before = state(hub, token)
    text = "username,groups,admin\nnewbie,staff,\nNotLower,staff,\nother,,\nx y,staff,maybe\n"
    done = dlhub(hub, token, "import", write(tmp_path, text, "bad.csv"))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert any(line.startswith(f"{tmp_path}/bad.csv:3: username 'NotLower'") for line in lines)
    assert sum(line.startswith(f"{tmp_path}/bad.csv:5: ") for line in lines) == 2
    assert lines[-1].endswith("nothing was applied")
    assert done.stdout == ""
    assert state(hub, token) == before


def test_refused_midway_undoes_what_was_applied(hub, admin, token, tmp_path):
    """A token that may manage users but not create groups: the created users vanish."""
    r = admin.api(
        "POST",
        f"/users/{admin.username}/tokens",
        json={"note": "users only", "scopes": ["admin:users", "groups"]},
    )
    r.raise_for_status()
    limited = r.json()["token"]
    before = state(hub, token)
    assert before[0]["bob"] == (False, ["staff"])
    text = (
        "username,groups,admin\n"
        "dan,lab,\n"
        "erin,,\n"  # created, in no group
        "bob,staff,true\n"  # made an admin
    )
    done = dlhub(hub, limited, "import", write(tmp_path, text))
    assert done.returncode == 1
    assert done.stdout.splitlines()[:4] == [
        "create user dan",
        "create user erin",
        "make bob an admin",
        "create group lab",
    ]
    (line,) = done.stderr.splitlines()
    assert "the hub refused POST /hub/api/groups/lab: 403" in line
    assert line.endswith("the 3 change(s) already made were undone")
    assert state(hub, token) == before


def test_non_admin_token_is_refused(hub, admin, token, tmp_path):
    student = hub.approved_user(admin, "nina")
    student_token = student.new_token("not an admin")
    before = state(hub, token)
    done = dlhub(hub, student_token, "import", write(tmp_path, "username,groups,admin\nzed,,\n"))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"dlhub roster: the token belongs to 'nina', who is not a hub admin; "
        f"make one as an admin at {hub.url}/hub/token"
    ]
    assert state(hub, token) == before
    assert dlhub(hub, student_token, "export").returncode == 1


def test_admin_cannot_demote_themselves(hub, admin, token, tmp_path):
    before = state(hub, token)
    done = dlhub(hub, token, "import", write(tmp_path, "username,groups,admin\nadmin,,no\n"))
    assert done.returncode == 1
    assert "takes admin rights from 'admin', whose token runs this import" in done.stderr
    assert state(hub, token) == before


def test_export_is_the_import_format(hub, token, tmp_path):
    users, _ = state(hub, token)
    out = tmp_path / "export.csv"
    done = dlhub(hub, token, "export", "-o", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text("utf-8")
    expected = "username,groups,admin\n" + "".join(
        f"{name},{';'.join(groups)},{'true' if is_admin else 'false'}\n"
        for name, (is_admin, groups) in sorted(users.items())
    )
    assert text == expected
    assert "alice,staff,false\n" in text and "carol,course-a;staff,false\n" in text
    assert dlhub(hub, token, "export").stdout == text

    # the roster imported earlier, normalised, is part of the export
    imported = parse(ROSTER.replace("bob,course-a,", "bob,staff,").replace(",yes", ","))
    exported = {r.username: r for r in parse(text)}
    for row in imported:
        assert (row.groups, row.admin) == (
            exported[row.username].groups,
            exported[row.username].admin,
        )

    again = dlhub(hub, token, "import", str(out))
    assert (again.returncode, again.stdout) == (0, "nothing to change\n")


def test_known_users_sign_up_without_approval(hub, token, tmp_path):
    done = dlhub(hub, token, "import", write(tmp_path, "username,groups,admin\nfrank,staff,\n"))
    assert done.returncode == 0, done.stderr

    password = new_password()
    s = hub.session()
    page = s.signup("frank", password)
    assert "The signup was successful" in page.text
    s.login("frank", password)
    assert token_api(hub.url, token, "GET", "/hub/api/users/frank").json()["groups"] == ["staff"]

    stranger = hub.session()
    page = stranger.signup("gina", password)
    assert "Your information has been sent to the admin" in page.text
    with pytest.raises(AssertionError, match="login of gina failed"):
        stranger.login("gina", password)
