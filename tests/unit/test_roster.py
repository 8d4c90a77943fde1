"""The roster's pure core: parsing with line-numbered errors, planning, export round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub_config import roster
from hub_config.roster import (
    Account,
    AddMembers,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    RemoveMembers,
    RosterError,
    Row,
    SetAdmin,
    format_plan,
    format_roster,
    parse,
    plan,
)

GOOD = """\
# course roster, spring term
username,groups,admin
alice, course-a ; staff ,yes

bob,course-a,
# carol joins later
carol,,0
dave,course-b;course-a;course-b,TRUE
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RosterError) as err:
        parse(text, "roster.csv")
    return err.value.problems


def test_parse_good_file():
    rows = parse(GOOD, "roster.csv")
    assert rows == [
        Row("alice", frozenset({"course-a", "staff"}), True, 3),
        Row("bob", frozenset({"course-a"}), False, 5),
        Row("carol", frozenset(), False, 7),
        Row("dave", frozenset({"course-a", "course-b"}), True, 8),
    ]


def test_columns_in_any_order_and_quoted_cells():
    rows = parse('admin,username,groups\nno,alice,"a;b"\n')
    assert rows == [Row("alice", frozenset({"a", "b"}), False, 2)]


def test_spreadsheet_utf8_with_bom_and_crlf():
    text = "\ufeffusername,groups,admin\r\nalice,staff,1\r\n"
    assert parse(text) == [Row("alice", frozenset({"staff"}), True, 2)]


@pytest.mark.parametrize(
    "line, message",
    [
        (",staff,no", "empty username"),
        ("Alice,,no", "username 'Alice' is not lowercase"),
        ("al ice,,no", "username 'al ice' contains whitespace"),
        ("al\tice,,no", "username 'al\\tice' contains whitespace"),
        ("a/b,,no", "username 'a/b' contains '/'"),
        ('"a,b",,no', "username 'a,b' contains ','"),
        ("x" * 256 + ",,no", "is longer than 255 characters"),
        ("alice,-staff,no", "group '-staff' is not a valid group name"),
        ("alice,a b,no", "group 'a b' is not a valid group name"),
        ("alice,good;" + "g" * 64 + ",no", "is not a valid group name"),
        ("alice,,maybe", "admin must be true, false, yes, no, 1, 0 or empty, not 'maybe'"),
        ("alice,staff", "expected 3 fields (username,groups,admin), found 2"),
        ("alice,staff,no,extra", "expected 3 fields (username,groups,admin), found 4"),
    ],
)
def test_each_bad_row_names_its_line(line, message):
    found = problems(f"username,groups,admin\n# a comment\n{line}\n")
    assert len(found) == 1
    assert found[0].startswith("roster.csv:3: ")
    assert message in found[0]


def test_lowercase_hint():
    (found,) = problems("username,groups,admin\nAlice,,\n")
    assert found == (
        "roster.csv:2: username 'Alice' is not lowercase (the hub lower-cases names at "
        "log-in); write it as 'alice'"
    )


def test_duplicate_names_both_lines():
    (found,) = problems("username,groups,admin\nbob,,\nalice,,\nbob,staff,\n")
    assert found == "roster.csv:4: user 'bob' is listed twice (lines 2 and 4)"


def test_all_errors_at_once():
    text = "username,groups,admin\nok,,\nBad,,\nfine,,\nx,,perhaps\ny,bad group;-x,\n"
    assert problems(text) == [
        "roster.csv:3: username 'Bad' is not lowercase (the hub lower-cases names at "
        "log-in); write it as 'bad'",
        "roster.csv:5: admin must be true, false, yes, no, 1, 0 or empty, not 'perhaps'",
        "roster.csv:6: group 'bad group' is not a valid group name (letters, digits, '.', "
        "'_' and '-', starting with a letter or digit, at most 63 characters)",
        "roster.csv:6: group '-x' is not a valid group name (letters, digits, '.', "
        "'_' and '-', starting with a letter or digit, at most 63 characters)",
    ]


@pytest.mark.parametrize(
    "header, wrong",
    [
        ("username,groups", "missing column 'admin'"),
        ("username,groups,admin,email", "unknown column 'email'"),
        ("user,groups,admin", "missing column 'username'; unknown column 'user'"),
        ("username,groups,admin,admin", "column 'admin' twice"),
    ],
)
def test_bad_header_names_it(header, wrong):
    (found,) = problems(f"# roster\n{header}\nalice,,\n")
    assert found == (f"roster.csv:2: header {header!r} must name username,groups,admin: {wrong}")


def test_empty_file_needs_a_header():
    assert problems("# nothing here\n\n") == [
        "roster.csv: no header row; the first line must be username,groups,admin"
    ]


def test_header_only_is_an_empty_roster():
    assert parse("username,groups,admin\n") == []


# --- plan -------------------------------------------------------------------------------


def rows(*specs) -> list[Row]:
    return [Row(name, frozenset(groups), admin) for name, groups, admin in specs]


def test_plan_creates_users_groups_and_memberships_in_order():
    ops = plan(
        rows(("bob", {"new", "old"}, False), ("alice", {"new"}, True)),
        current_users={},
        current_groups={"old"},
    )
    assert ops == [
        CreateUser("alice", admin=True),
        CreateUser("bob", admin=False),
        CreateGroup("new"),
        AddMembers("new", ("alice", "bob")),
        AddMembers("old", ("bob",)),
    ]


def test_plan_changes_admin_flags_and_moves_between_groups():
    current = {
        "alice": Account(admin=True, groups=frozenset({"a", "staff"})),
        "bob": Account(admin=False, groups=frozenset({"b"})),
        "zoe": Account(admin=False, groups=frozenset({"a"})),  # not listed: untouched
    }
    ops = plan(
        rows(("alice", {"b", "staff"}, False), ("bob", {"b"}, True)),
        current,
        current_groups={"a", "b", "staff", "unused"},
    )
    assert ops == [
        SetAdmin("alice", False),
        SetAdmin("bob", True),
        RemoveMembers("a", ("alice",)),
        AddMembers("b", ("alice",)),
    ]


def test_plan_of_equal_state_is_empty():
    current = {"alice": Account(True, frozenset({"a"})), "bob": Account(False, frozenset())}
    assert plan(rows(("alice", {"a"}, True), ("bob", set(), False)), current, {"a"}) == []
    assert format_plan([]) == "nothing to change"


def test_format_plan():
    ops = [
        CreateUser("alice", admin=True),
        CreateUser("bob"),
        SetAdmin("carol", True),
        SetAdmin("dave", False),
        CreateGroup("g"),
        RemoveMembers("h", ("carol",)),
        AddMembers("g", ("alice", "bob")),
    ]
    assert format_plan(ops).splitlines() == [
        "create user alice (admin)",
        "create user bob",
        "make carol an admin",
        "take admin rights from dave",
        "create group g",
        "remove from group h: carol",
        "add to group g: alice, bob",
    ]


def test_undo_is_the_inverse():
    assert CreateUser("a", True).undo() == DeleteUser("a")
    assert SetAdmin("a", True).undo() == SetAdmin("a", False)
    assert CreateGroup("g").undo() == DeleteGroup("g")
    assert AddMembers("g", ("a",)).undo() == RemoveMembers("g", ("a",))
    assert RemoveMembers("g", ("a",)).undo() == AddMembers("g", ("a",))


class FailingHub:
    """Records calls; refuses the n-th (1-based) and, optionally, some undo calls."""

    def __init__(self, fail_at: int, refuse=()):
        self.fail_at = fail_at
        self.refuse = set(refuse)
        self.calls: list = []

    def __call__(self, api, op):
        self.calls.append(op)
        if len(self.calls) == self.fail_at or op in self.refuse:
            raise roster.HubError(f"the hub refused {op.describe()}: 403 Forbidden")


def test_apply_undoes_newest_first():
    ops = [CreateUser("a"), SetAdmin("b", True), CreateGroup("g"), AddMembers("g", ("a",))]
    hub = FailingHub(fail_at=4)
    with pytest.raises(roster.HubError) as err:
        roster.apply(None, ops, call=hub)
    assert hub.calls[4:] == [DeleteGroup("g"), SetAdmin("b", False), DeleteUser("a")]
    assert str(err.value) == (
        "the hub refused add to group g: a: 403 Forbidden; "
        "the 3 change(s) already made were undone"
    )


def test_apply_says_what_it_could_not_undo():
    hub = FailingHub(fail_at=2, refuse={DeleteUser("a")})
    with pytest.raises(roster.HubError) as err:
        roster.apply(None, [CreateUser("a"), CreateGroup("g")], call=hub)
    assert str(err.value).endswith("could NOT undo: delete user a (fix these by hand)")


def test_apply_first_call_fails():
    with pytest.raises(roster.HubError, match="nothing was changed$"):
        roster.apply(None, [CreateUser("a")], call=FailingHub(fail_at=1))


# --- export -----------------------------------------------------------------------------


def test_export_keeps_names_that_look_like_comments():
    current = {"#1": Account(False, frozenset())}
    assert format_roster(current) == 'username,groups,admin\n"#1","","false"\n'
    assert parse(format_roster(current)) == [Row("#1", frozenset(), False, 2)]


def test_export_format():
    current = {
        "bob": Account(False, frozenset()),
        "alice": Account(True, frozenset({"staff", "course-a"})),
    }
    assert format_roster(current) == (
        "username,groups,admin\nalice,course-a;staff,true\nbob,,false\n"
    )


usernames = st.text(
    st.characters(categories=["Ll", "Nd"]) | st.sampled_from("._-@#\"'+;"),
    min_size=1,
    max_size=20,
)
groupnames = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,10}\Z")
accounts = st.builds(Account, st.booleans(), st.frozensets(groupnames, max_size=4))


@given(st.dictionaries(usernames, accounts, max_size=8))
def test_export_parses_back_and_plans_nothing(current):
    parsed = parse(format_roster(current), "export.csv")
    assert {r.username: Account(r.admin, r.groups) for r in parsed} == current
    groups = set().union(*(a.groups for a in current.values()))
    assert plan(parsed, current, groups) == []


@given(
    st.dictionaries(usernames, accounts, max_size=6),
    st.dictionaries(usernames, accounts, max_size=6),
)
def test_applying_a_plan_reaches_the_roster(current, wanted):
    """Simulate the plan on plain data: listed users match, others are untouched."""
    state = {name: Account(a.admin, set(a.groups)) for name, a in current.items()}
    groups = set().union(*(a.groups for a in current.values()))
    wanted_rows = [Row(n, a.groups, a.admin) for n, a in wanted.items()]
    for op in plan(wanted_rows, current, groups):
        match op:
            case CreateUser(name, admin):
                assert name not in state
                state[name] = Account(admin, set())
            case SetAdmin(name, admin):
                state[name] = Account(admin, state[name].groups)
            case CreateGroup(name):
                assert name not in groups
                groups.add(name)
            case AddMembers(group, users):
                assert group in groups
                for u in users:
                    state[u].groups.add(group)
            case RemoveMembers(group, users):
                for u in users:
                    state[u].groups.remove(group)
    final = {n: Account(a.admin, frozenset(a.groups)) for n, a in state.items()}
    assert final == {**current, **wanted}


# --- the shell's pure helpers ------------------------------------------------------------


@pytest.mark.parametrize(
    "bind, url",
    [
        ("http://0.0.0.0:8000", "http://127.0.0.1:8000"),
        ("http://:8000/", "http://127.0.0.1:8000"),
        ("http://[::]:8000/prefix/", "http://[::1]:8000/prefix"),
        ("https://hub.example.org/", "https://hub.example.org"),
    ],
)
def test_hub_url(bind, url):
    assert roster.hub_url(bind) == url


def test_token_only_from_the_environment():
    hub = "http://0.0.0.0:8000"
    assert roster.token_from_env(hub, {"JUPYTERHUB_API_TOKEN": "b"}) == "b"
    assert roster.token_from_env(hub, {"DLHUB_API_TOKEN": "a", "JUPYTERHUB_API_TOKEN": "b"}) == "a"
    with pytest.raises(roster.HubError) as err:
        roster.token_from_env(hub, {})
    assert "make one at http://127.0.0.1:8000/hub/token" in str(err.value)
    assert "\n" not in str(err.value)


# --- sign-up of users a roster created ---------------------------------------------------


@pytest.mark.parametrize("approve", [True, False])
def test_sign_up_of_a_known_user(approve):
    from jupyterhub import orm

    from hub_config.auth import DlhubAuthenticator

    db = orm.new_session_factory("sqlite://")()
    db.add(orm.User(name="known"))
    db.add(orm.User(name="boss", admin=True))
    db.commit()
    auth = DlhubAuthenticator(db=db, approve_known_users=approve)
    assert auth.create_user("known", "a-long-pass-123").is_authorized is approve
    assert auth.create_user("stranger", "a-long-pass-123").is_authorized is False
    # an admin the hub knows is never approved by whoever signs up first
    assert auth.create_user("boss", "a-long-pass-123").is_authorized is False
