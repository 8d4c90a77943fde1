"""Bulk user management from a CSV roster: ``dlhub roster import`` and ``dlhub roster export``.

The roster is a UTF-8 CSV file with a header row naming the columns ``username``,
``groups`` and ``admin`` (in any order). ``groups`` is a ``;``-separated list of group
names (spaces around names are ignored; empty means no groups); ``admin`` is one of
true/false/yes/no/1/0, or empty for false. Blank lines and lines starting with ``#`` are
skipped.

What an import means:

- The file is authoritative for the users it lists. After an import each listed user
  exists, is a hub admin exactly when its ``admin`` cell says so, and is a member of
  exactly the groups listed for it: missing groups are created, and its memberships of
  groups the file does not list for it are removed.
- Users the file does not list are left alone, and no group is ever deleted.
- Importing the same file again changes nothing ("nothing to change"); ``--dry-run``
  prints the changes an import would make and makes none.
- Every row is checked before anything is applied; all problems are reported at once,
  each as ``FILE:LINE: problem``, and nothing is applied.
- Nothing is left half-applied: when the hub refuses a change or stops answering, the
  changes already made are undone, newest first, before the error is reported.

``export`` writes every hub user in the same format (sorted by name, groups sorted), so an
export imported again is a no-op.

The module is a pure core (:func:`parse`, :func:`plan`, :func:`format_plan`,
:func:`format_roster`) that works on plain data, and a thin shell (:class:`HubAPI`,
:func:`read_state`, :func:`apply`) that talks to the hub's REST API with an admin's token.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import schema

#: The columns of a roster, in the order ``export`` writes them.
COLUMNS = ("username", "groups", "admin")

#: Environment variables holding the admin's API token, in the order they are read.
TOKEN_ENVS = ("DLHUB_API_TOKEN", "JUPYTERHUB_API_TOKEN")

#: A group name as the platform config schema defines it (``profiles[].groups`` items;
#: ``volumes.groups[].group`` has the same pattern, tests/unit/test_contracts.py checks it).
GROUP_RE = re.compile(
    schema()["properties"]["profiles"]["items"]["properties"]["groups"]["items"]["pattern"]
)
GROUP_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63"
MAX_USERNAME = 255

ADMIN_VALUES = {
    "true": True,
    "yes": True,
    "1": True,
    "false": False,
    "no": False,
    "0": False,
    "": False,
}

PAGINATION = "application/jupyterhub-pagination+json"


# --- pure core -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One user line of a roster."""

    username: str
    groups: frozenset[str]
    admin: bool
    line: int = 0


@dataclass(frozen=True)
class Account:
    """What the hub knows about one user, as far as a roster is concerned."""

    admin: bool
    groups: frozenset[str]


class RosterError(ValueError):
    """A roster could not be read; ``problems`` are ``FILE:LINE: problem`` lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def username_problem(name: str) -> str | None:
    """Why ``name`` cannot be a hub username, or None when it can."""
    if not name:
        return "empty username"
    if len(name) > MAX_USERNAME:
        return f"username {name[:20]!r}... is longer than {MAX_USERNAME} characters"
    if any(c.isspace() for c in name):
        return f"username {name!r} contains whitespace"
    for c in "/,":
        if c in name:
            return f"username {name!r} contains {c!r}"
    if name != name.lower():
        return (
            f"username {name!r} is not lowercase (the hub lower-cases names at log-in); "
            f"write it as {name.lower()!r}"
        )
    return None


def group_problem(name: str) -> str | None:
    """Why ``name`` cannot be a group name in a roster, or None when it can."""
    if GROUP_RE.search(name):  # as a JSON Schema ``pattern`` is applied
        return None
    return f"group {name!r} is not a valid group name ({GROUP_RULE} characters)"


def _cells(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def parse(text: str, source: str = "roster.csv") -> list[Row]:
    """Read a roster; raise :class:`RosterError` listing every problem, each with its line.

    ``source`` names the file in the messages (``roster.csv:7: ...``). A byte-order mark
    (as spreadsheets write into UTF-8 CSV) is ignored.
    """
    text = text.removeprefix("\ufeff")
    problems: list[str] = []
    rows: list[Row] = []
    seen: dict[str, int] = {}
    order: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue

        def problem(message: str, number=number) -> None:
            problems.append(f"{source}:{number}: {message}")

        cells = [c.strip() for c in _cells(line)]
        if order is None:
            names = [c.lower() for c in cells]
            expected = ",".join(COLUMNS)
            missing = [c for c in COLUMNS if c not in names]
            extra = [c for c in names if c not in COLUMNS]
            doubled = sorted({c for c in names if c in COLUMNS and names.count(c) > 1})
            wrong = []
            if missing:
                wrong.append("missing column " + ", ".join(repr(c) for c in missing))
            if extra:
                wrong.append("unknown column " + ", ".join(repr(c) for c in extra))
            if doubled:
                wrong.append("column " + ", ".join(repr(c) for c in doubled) + " twice")
            if wrong:
                problem(f"header {line.strip()!r} must name {expected}: " + "; ".join(wrong))
                break
            order = names
            continue
        if len(cells) != len(order):
            problem(f"expected {len(order)} fields ({','.join(order)}), found {len(cells)}")
            continue
        cell = dict(zip(order, cells, strict=True))
        ok = True
        name = cell["username"]
        why = username_problem(name)
        if why:
            problem(why)
            ok = False
        elif name in seen:
            problem(f"user {name!r} is listed twice (lines {seen[name]} and {number})")
            ok = False
        else:
            seen[name] = number
        groups = [g.strip() for g in cell["groups"].split(";")]
        groups = [g for g in groups if g]
        for group in groups:
            why = group_problem(group)
            if why:
                problem(why)
                ok = False
        flag = cell["admin"].lower()
        if flag not in ADMIN_VALUES:
            problem(f"admin must be true, false, yes, no, 1, 0 or empty, not {cell['admin']!r}")
            ok = False
        if ok:
            rows.append(Row(name, frozenset(groups), ADMIN_VALUES[flag], number))
    if order is None and not problems:
        problems.append(f"{source}: no header row; the first line must be {','.join(COLUMNS)}")
    if problems:
        raise RosterError(problems)
    return rows


# Operations are plain data: the shell turns each into one API call, and each has an
# inverse (``undo``) that puts the hub back as it was before the call.


@dataclass(frozen=True)
class CreateUser:
    """Create a user named in the roster (an admin when its ``admin`` column says so)."""

    name: str
    admin: bool = False

    def describe(self) -> str:
        return f"create user {self.name}" + (" (admin)" if self.admin else "")

    def undo(self) -> DeleteUser:
        return DeleteUser(self.name)


@dataclass(frozen=True)
class DeleteUser:
    """Only ever the undo of :class:`CreateUser`: an import never deletes users."""

    name: str

    def describe(self) -> str:
        return f"delete user {self.name}"


@dataclass(frozen=True)
class SetAdmin:
    """Give or take a user's admin rights, as the roster's ``admin`` column says."""

    name: str
    admin: bool

    def describe(self) -> str:
        if self.admin:
            return f"make {self.name} an admin"
        return f"take admin rights from {self.name}"

    def undo(self) -> SetAdmin:
        return SetAdmin(self.name, not self.admin)


@dataclass(frozen=True)
class CreateGroup:
    """Create a group the roster names that the hub does not have yet."""

    name: str

    def describe(self) -> str:
        return f"create group {self.name}"

    def undo(self) -> DeleteGroup:
        return DeleteGroup(self.name)


@dataclass(frozen=True)
class DeleteGroup:
    """Only ever the undo of :class:`CreateGroup`: an import never deletes groups."""

    name: str

    def describe(self) -> str:
        return f"delete group {self.name}"


@dataclass(frozen=True)
class AddMembers:
    """Add users to a group, as the roster's ``groups`` column says."""

    group: str
    users: tuple[str, ...]

    def describe(self) -> str:
        return f"add to group {self.group}: {', '.join(self.users)}"

    def undo(self) -> RemoveMembers:
        return RemoveMembers(self.group, self.users)


@dataclass(frozen=True)
class RemoveMembers:
    """Remove roster users from a group their ``groups`` column no longer lists."""

    group: str
    users: tuple[str, ...]

    def describe(self) -> str:
        return f"remove from group {self.group}: {', '.join(self.users)}"

    def undo(self) -> AddMembers:
        return AddMembers(self.group, self.users)


Operation = (
    CreateUser | DeleteUser | SetAdmin | CreateGroup | DeleteGroup | AddMembers | RemoveMembers
)


def plan(
    rows: Iterable[Row], current_users: Mapping[str, Account], current_groups: Iterable[str]
) -> list[Operation]:
    """The operations that make the hub match ``rows``, in the order they must be applied.

    Users are created (with their admin flag) first, then admin flags change, then
    missing groups are created, then memberships are removed and added, one operation
    per group. Users not in ``rows`` and groups nobody is added to are not touched.
    """
    rows = sorted(rows, key=lambda r: r.username)
    existing_groups = set(current_groups)
    creates, flags = [], []
    adds: dict[str, list[str]] = {}
    removes: dict[str, list[str]] = {}
    for row in rows:
        account = current_users.get(row.username)
        if account is None:
            creates.append(CreateUser(row.username, row.admin))
            account = Account(admin=row.admin, groups=frozenset())
        elif account.admin != row.admin:
            flags.append(SetAdmin(row.username, row.admin))
        for group in row.groups - account.groups:
            adds.setdefault(group, []).append(row.username)
        for group in account.groups - row.groups:
            removes.setdefault(group, []).append(row.username)
    new_groups = [CreateGroup(g) for g in sorted(set(adds) - existing_groups)]
    return [
        *creates,
        *flags,
        *new_groups,
        *(RemoveMembers(g, tuple(removes[g])) for g in sorted(removes)),
        *(AddMembers(g, tuple(adds[g])) for g in sorted(adds)),
    ]


def format_plan(operations: list[Operation]) -> str:
    """The plan as lines for people, or "nothing to change"."""
    if not operations:
        return "nothing to change"
    return "\n".join(op.describe() for op in operations)


def format_roster(current_users: Mapping[str, Account]) -> str:
    """A roster listing every user (sorted by name, groups sorted): what ``export`` writes."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # a line starting with '#' is a comment: quote such names to keep them
    quoting = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(COLUMNS)
    for name in sorted(current_users):
        account = current_users[name]
        groups = ";".join(sorted(account.groups))
        row = [name, groups, "true" if account.admin else "false"]
        (quoting if name.startswith("#") else writer).writerow(row)
    return out.getvalue()


# --- the shell: the hub's REST API ---------------------------------------------------


class HubError(RuntimeError):
    """A call to the hub failed; ``str(err)`` is one line for the admin."""


class HubAPI:
    """The hub's REST API at ``<url>/hub/api`` with an admin's token (never logged)."""

    def __init__(self, url: str, token: str, timeout: float = 30):
        self.url = hub_url(url)
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HubAPI({self.url!r})"

    def request(self, method: str, path: str, body=None, headers: dict | None = None):
        """Call ``/hub/api`` + ``path``; return the decoded JSON reply (None when empty)."""
        req = urllib.request.Request(
            f"{self.url}/hub/api{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"token {self._token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        what = f"{method} /hub/api{urllib.parse.unquote(path.split('?')[0])}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as reply:
                data = reply.read()
        except urllib.error.HTTPError as e:
            raise HubError(f"the hub refused {what}: {e.code} {_reason(e)}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise HubError(f"cannot reach the hub at {self.url} ({what}): {reason}") from None
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise HubError(
                f"{self.url} answered {what} with something other than JSON: "
                "is it a JupyterHub address?"
            ) from None

    def pages(self, path: str) -> list:
        """All items of a paginated list, following ``_pagination.next``."""
        items: list = []
        query = ""
        while True:
            page = self.request("GET", path + query, headers={"Accept": PAGINATION})
            if isinstance(page, list):  # a hub too old to paginate sends everything
                return page
            items.extend(page["items"])
            following = page["_pagination"].get("next")
            if not following:
                return items
            query = "?" + urllib.parse.urlencode(
                {"offset": following["offset"], "limit": following["limit"]}
            )


def _reason(error: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(error.read()).get("message")
    except (ValueError, AttributeError, OSError):
        message = None
    return " ".join(str(message or error.reason).split())


def hub_url(url: str) -> str:
    """The address to call for a hub bound to ``url`` (0.0.0.0 means this machine)."""
    parts = urllib.parse.urlsplit(url.rstrip("/"))
    host = parts.hostname or ""
    if host in ("", "0.0.0.0", "::"):
        local = "127.0.0.1" if host != "::" else "[::1]"
        netloc = local + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urllib.parse.urlunsplit(parts)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def read_state(api: HubAPI) -> tuple[dict[str, Account], set[str]]:
    """Every user (admin flag, groups) and every group name the hub has."""
    users = {
        u["name"]: Account(admin=bool(u.get("admin")), groups=frozenset(u.get("groups") or ()))
        for u in api.pages("/users")
    }
    groups = {g["name"] for g in api.pages("/groups")}
    return users, groups


def call(api: HubAPI, op: Operation) -> None:
    """Apply one operation with one API call."""
    match op:
        case CreateUser(name, admin):
            api.request("POST", f"/users/{_quote(name)}", {"admin": admin})
        case DeleteUser(name):
            api.request("DELETE", f"/users/{_quote(name)}")
        case SetAdmin(name, admin):
            api.request("PATCH", f"/users/{_quote(name)}", {"admin": admin})
        case CreateGroup(name):
            api.request("POST", f"/groups/{_quote(name)}", {})
        case DeleteGroup(name):
            api.request("DELETE", f"/groups/{_quote(name)}")
        case AddMembers(group, users):
            api.request("POST", f"/groups/{_quote(group)}/users", {"users": list(users)})
        case RemoveMembers(group, users):
            api.request("DELETE", f"/groups/{_quote(group)}/users", {"users": list(users)})
        case _:
            raise TypeError(f"not a roster operation: {op!r}")


def apply(api: HubAPI, operations: list[Operation], call=call) -> None:
    """Apply ``operations`` in order, or none of them.

    When a call fails, the operations already applied are undone newest first, and a
    :class:`HubError` says what failed and whether the undo was complete.
    """
    done: list[Operation] = []
    for op in operations:
        try:
            call(api, op)
        except HubError as e:
            failed = []
            for applied in reversed(done):
                try:
                    call(api, applied.undo())
                except HubError:
                    failed.append(applied.undo().describe())
            if failed:
                undo = "could NOT undo: " + "; ".join(failed) + " (fix these by hand)"
            elif done:
                undo = f"the {len(done)} change(s) already made were undone"
            else:
                undo = "nothing was changed"
            raise HubError(f"{e}; {undo}") from None
        done.append(op)


# --- commands --------------------------------------------------------------------------


def token_from_env(url: str, environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    for name in TOKEN_ENVS:
        if environ.get(name):
            return environ[name]
    raise HubError(
        f"no API token: as an admin, make one at {hub_url(url)}/hub/token, then "
        "`read -s DLHUB_API_TOKEN && export DLHUB_API_TOKEN` (the token is not an argument)"
    )


def check_caller(api: HubAPI) -> str | None:
    """Refuse a token whose owner is not a hub admin; return the owner's name.

    None for a service's token (its scopes decide what it may do).
    """
    me = api.request("GET", "/user") or {}
    if me.get("kind", "user") != "user":
        return None
    name = me.get("name")
    if not me.get("admin"):
        raise HubError(
            f"the token belongs to {name!r}, who is not a hub admin; "
            f"make one as an admin at {api.url}/hub/token"
        )
    return name


def check_self_demotion(operations: list[Operation], caller: str | None) -> None:
    if caller and SetAdmin(caller, False) in operations:
        raise HubError(
            f"the roster takes admin rights from {caller!r}, whose token runs this import; "
            "run it with another admin's token or list them as an admin"
        )


def _read_roster(path: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.buffer.read().decode("utf-8-sig"), "<stdin>"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise RosterError([f"{path}: cannot read: {e.strerror}"]) from None
    try:
        return data.decode("utf-8-sig"), path
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise RosterError(
            [f"{path}:{line}: not UTF-8 text; save the file as 'CSV UTF-8'"]
        ) from None


#: ``auth.type`` values whose users and groups the directory decides (not a roster).
DIRECTORY_TYPES = {"oidc": "OpenID Connect provider", "ldap": "LDAP directory"}


def refusal(auth_type: str) -> str | None:
    """Why ``import`` refuses under ``auth.type`` (one sentence), or None (``native``).

    With a directory, each log-in and each server start set a user's groups to the
    directory's, so memberships imported here would be undone; users made here could
    not log in unless the directory lets them. ``export`` still works."""
    if auth_type not in DIRECTORY_TYPES:
        return None
    return (
        f"dlhub roster import: refused, because auth.type is {auth_type}: users and group "
        f"memberships come from the {DIRECTORY_TYPES[auth_type]} at every log-in, so change "
        "them there (dlhub roster export still lists the hub's users)."
    )


def run_import(
    path: str,
    url: str,
    dry_run: bool = False,
    environ=None,
    out=None,
    auth_type: str = "native",
) -> int:
    """``dlhub roster import``: print the plan, apply it unless ``dry_run``; refused (exit
    status 2, nothing read or applied) when ``auth_type`` is a directory's."""
    out = out or sys.stdout
    refused = refusal(auth_type)
    if refused:
        print(refused, file=sys.stderr)
        return 2
    try:
        text, source = _read_roster(path)
        rows = parse(text, source)
    except RosterError as e:
        for line in e.problems:
            print(line, file=sys.stderr)
        print(f"dlhub roster: {path}: nothing was applied", file=sys.stderr)
        return 1
    try:
        api = HubAPI(url, token_from_env(url, environ))
        caller = check_caller(api)
        users, groups = read_state(api)
        operations = plan(rows, users, groups)
        check_self_demotion(operations, caller)
        print(format_plan(operations), file=out)
        if not operations:
            return 0
        if dry_run:
            print(f"dry run: {len(operations)} change(s) not applied", file=out)
            return 0
        apply(api, operations)
    except HubError as e:
        print(f"dlhub roster: {e}", file=sys.stderr)
        return 1
    print(f"applied {len(operations)} change(s)", file=out)
    return 0


def run_export(url: str, output: str | None = None, environ=None) -> int:
    """``dlhub roster export``: write every user as a roster to ``output`` or stdout."""
    try:
        api = HubAPI(url, token_from_env(url, environ))
        check_caller(api)
        users, _ = read_state(api)
    except HubError as e:
        print(f"dlhub roster: {e}", file=sys.stderr)
        return 1
    text = format_roster(users)
    if output and output != "-":
        with open(output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"wrote {len(users)} user(s) to {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
