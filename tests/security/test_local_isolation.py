"""Local backend, hub run as root: each user's server runs as a system account of its own.

From a user's kernel (code run over the kernel websocket, as a user would): no root, no
other user's home, none of the hub's secrets or databases, no other process's
environment; datasets read-only, a group's folder for its members only; the profile's
memory limit enforced by a cgroup. And the hub runs from a checkout in a 0700 directory
(as in root's home), refusing paths the users' accounts could not reach.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from securitykit import create_users, run_ok

from hub_config import cgroups
from hubtest import RunningHub, free_port, start_server, stop_server, token_api

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip(
        "the hub makes a system account per user only when it runs as root; run as an "
        "ordinary user every server shares the hub's account (trusted team)",
        allow_module_level=True,
    )

MIB = 1024**2
PROFILES = [
    {"name": "standard", "default": True, "cpu_limit": 1, "mem_limit": "1G"},
    {"name": "tiny", "cpu_limit": 0.5, "mem_limit": "300M"},
]

#: Python run in a user's kernel: what a path gives this process
PROBE = """
import json, os
def probe(path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        return "readable"
    except PermissionError:
        return "denied"
    except FileNotFoundError:
        return "missing"
def write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "written"
    except PermissionError:
        return "denied"
    except FileNotFoundError:
        return "missing"
"""


def kernel_json(hub, token, user, expression: str):
    """Evaluate ``expression`` (after :data:`PROBE`) in ``user``'s kernel."""
    return json.loads(run_ok(hub, token, user, PROBE + f"\nprint(json.dumps({expression}))"))


@pytest.fixture(scope="module")
def hub(hub_factory):
    config = {
        "gpus": {
            "enabled": True,
            "devices": [{"uuid": "GPU-0", "model": "A100"}],
            "port": free_port(),
        },
        "profiles": PROFILES,
        "volumes": {"groups": [{"group": "physics"}, {"group": "course", "others": "read"}]},
        "culling": {"enabled": False},
    }
    return hub_factory(config, name="localiso")


@pytest.fixture(scope="module")
def tokens(hub):
    admin_token = hub.admin().new_token("isolation")
    tokens = create_users(hub, admin_token, "alice", "bob")
    r = token_api(hub.url, admin_token, "POST", "/hub/api/groups/physics", json={})
    assert r.status_code in (201, 409), r.text
    r = token_api(
        hub.url, admin_token, "POST", "/hub/api/groups/physics/users", json={"users": ["alice"]}
    )
    assert r.status_code == 200, r.text
    for name in ("alice", "bob"):
        start_server(hub.url, tokens[name], name)
    yield {"admin": admin_token, **tokens}
    for name in ("alice", "bob"):
        stop_server(hub.url, tokens[name], name)


def server_pids(hub, user) -> list[int]:
    """The processes of ``user``'s account (their server and its kernels)."""
    uid = pwd.getpwnam(hub.account(user)).pw_uid
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and owner(p) == uid]


def owner(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except FileNotFoundError:
        return None


def hub_service_pid(hub, module: str) -> int:
    """The pid of a process the hub started whose command line holds ``module``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == hub.proc.pid and module.encode() in cmdline:
            return int(proc.name)
    raise AssertionError(f"no process {module} started by the hub")


def test_each_server_runs_as_its_own_account(hub, tokens):
    seen = {}
    for user in ("alice", "bob"):
        seen[user] = kernel_json(
            hub,
            tokens[user],
            user,
            "{'uid': os.getuid(), 'euid': os.geteuid(), 'groups': os.getgroups(),"
            " 'user': __import__('pwd').getpwuid(os.getuid()).pw_name,"
            " 'home': os.environ['HOME'], 'env_user': os.environ['USER'], 'cwd': os.getcwd()}",
        )
        account = hub.account(user)
        assert seen[user]["user"] == seen[user]["env_user"] == account
        assert seen[user]["home"] == seen[user]["cwd"] == str(hub.home(user))
        assert seen[user]["uid"] != 0 and seen[user]["euid"] != 0
        assert 0 not in seen[user]["groups"]
        home = hub.home(user).stat()
        assert home.st_uid == seen[user]["uid"] and stat.S_IMODE(home.st_mode) == 0o700
        assert pwd.getpwnam(account).pw_gecos.startswith("dlhub account")
    assert seen["alice"]["uid"] != seen["bob"]["uid"]
    # the starter notebooks are the user's own
    notebook = hub.home("alice") / "01-keras-digits.ipynb"
    assert notebook.stat().st_uid == seen["alice"]["uid"]
    assert (
        "--allow-root" not in (Path(f"/proc/{server_pids(hub, 'alice')[0]}/cmdline")).read_text()
    )


def test_a_user_cannot_read_the_hubs_state_or_secrets(hub, tokens):
    secrets = [
        hub.data_dir / "jupyterhub_cookie_secret",
        hub.data_dir / "jupyterhub.sqlite",
        hub.data_dir / "gpu-scheduler-secret",
        hub.data_dir / "gpu-scheduler.sqlite",
    ]
    for path in secrets:
        assert path.exists(), path  # they exist: the user is kept out, not missing them
    paths = [str(p) for p in [hub.data_dir, *secrets]]
    got = kernel_json(hub, tokens["alice"], "alice", f"{{p: probe(p) for p in {paths!r}}}")
    assert got == {p: "denied" for p in paths}
    assert stat.S_IMODE(hub.data_dir.stat().st_mode) == 0o700
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_user_cannot_read_another_users_home(hub, tokens):
    bob_home = hub.home("bob")
    run_ok(hub, tokens["bob"], "bob", "open('private.txt', 'w').write('bob only')")
    assert (bob_home / "private.txt").exists()
    paths = [str(bob_home), str(bob_home / "private.txt"), str(bob_home / "01-keras-digits.ipynb")]
    got = kernel_json(hub, tokens["alice"], "alice", f"{{p: probe(p) for p in {paths!r}}}")
    assert got == {p: "denied" for p in paths}
    assert kernel_json(hub, tokens["alice"], "alice", f"write({paths[0] + '/planted'!r})") == (
        "denied"
    )


def test_a_user_cannot_read_other_processes_environments(hub, tokens):
    targets = {
        "bob's server": server_pids(hub, "bob")[0],
        "the hub": hub.proc.pid,
        "the GPU scheduler": hub_service_pid(hub, "gpu_scheduler"),
        "the proxy": int((hub.data_dir / "jupyterhub-proxy.pid").read_text()),
    }
    # the hub's environment holds secrets worth stealing
    assert (
        b"DLHUB_GPU_SHARED_SECRET"
        in Path(f"/proc/{targets['the GPU scheduler']}/environ").read_bytes()
    )
    paths = {what: f"/proc/{pid}/environ" for what, pid in targets.items()}
    got = kernel_json(
        hub,
        tokens["alice"],
        "alice",
        f"{{what: probe(p) for what, p in {paths!r}.items()}}"
        " | {'own': probe('/proc/self/environ')}",
    )
    assert got == {**{what: "denied" for what in targets}, "own": "readable"}


def test_datasets_are_read_only_for_users(hub, tokens):
    datasets = hub.volumes_dir() / "datasets"
    (datasets / "iris.csv").write_text("a,b\n1,2\n")  # an admin fills it as root
    got = kernel_json(
        hub,
        tokens["alice"],
        "alice",
        "{'read': open('datasets/iris.csv').read(), 'new': write('datasets/mine.csv'),"
        " 'change': write('datasets/iris.csv')}",
    )
    assert got == {"read": "a,b\n1,2\n", "new": "denied", "change": "denied"}
    info = datasets.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)


def test_a_group_folder_is_for_its_members_only(hub, tokens):
    folder = hub.volumes_dir() / "group-physics"
    assert kernel_json(hub, tokens["alice"], "alice", "write('groups/physics/result.txt')") == (
        "written"
    )
    got = kernel_json(
        hub,
        tokens["bob"],
        "bob",
        f"{{'link': os.path.lexists('groups/physics'), 'dir': probe({str(folder)!r}),"
        f" 'file': probe({str(folder / 'result.txt')!r}),"
        f" 'write': write({str(folder / 'bob.txt')!r})}}",
    )
    assert got == {"link": False, "dir": "denied", "file": "denied", "write": "denied"}
    # a group folder with `others: read`: non-members read it, only members write
    (hub.volumes_dir() / "group-course" / "notes.txt").write_text("read me")
    got = kernel_json(
        hub,
        tokens["bob"],
        "bob",
        "{'read': open('groups/course/notes.txt').read(), 'write': write('groups/course/b.txt'),"
        " 'change': write('groups/course/notes.txt')}",
    )
    assert got == {"read": "read me", "write": "denied", "change": "denied"}
    # the shared folder: every user writes, and reads what others wrote
    assert kernel_json(hub, tokens["alice"], "alice", "write('shared/from-alice.txt')") == (
        "written"
    )
    got = kernel_json(
        hub,
        tokens["bob"],
        "bob",
        "{'read': probe('shared/from-alice.txt'), 'write': write('shared/from-bob.txt'),"
        " 'change': write('shared/from-alice.txt')}",
    )
    assert got == {"read": "readable", "write": "written", "change": "written"}


def test_an_account_dlhub_did_not_make_is_never_used(hub, tokens):
    """An existing system account that has the name dlhub would give a user: refused."""
    name = hub.account("eve")
    subprocess.run(["useradd", "--comment", "Eve Smith", name], check=True)
    try:
        eve = create_users(hub, tokens["admin"], "eve")["eve"]
        r = token_api(hub.url, eve, "POST", "/hub/api/users/eve/server", json={})
        assert r.status_code == 409, r.text
        assert f"the system account {name} exists and was not made by dlhub" in r.json()["message"]
        assert pwd.getpwnam(name).pw_gecos == "Eve Smith"
        assert not hub.home("eve").exists()
    finally:
        subprocess.run(["userdel", name], check=True)


def test_the_profiles_memory_limit_is_enforced(hub, tokens):
    support = cgroups.detect()
    if support.version is None:
        pytest.skip(f"no cgroup limits on this machine: {support.reason}")
    carol = create_users(hub, tokens["admin"], "carol")["carol"]
    start_server(hub.url, carol, "carol", options={"profile": "tiny"})
    try:
        group = cgroups.ServerCgroup(support.version, hub.account("carol"))
        if support.version == "v2":
            limit = (group.dirs[""] / "memory.max").read_text()
            cpu = (group.dirs[""] / "cpu.max").read_text()
            assert cpu.split() == ["50000", "100000"]
        else:
            limit = (group.dirs["memory"] / "memory.limit_in_bytes").read_text()
            assert (group.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert int(limit) == 300 * MIB
        assert set(server_pids(hub, "carol")) <= group.pids()
        # a process of the server that goes beyond the limit is killed; the server lives on
        out = run_ok(
            hub,
            carol,
            "carol",
            "import subprocess, sys\n"
            "small = subprocess.run([sys.executable, '-c', 'b = b\"x\" * (100 << 20)'])\n"
            "big = subprocess.run([sys.executable, '-c', 'b = b\"x\" * (600 << 20)'])\n"
            "print(small.returncode, big.returncode)",
        )
        assert out.split() == ["0", "-9"]
    finally:
        stop_server(hub.url, carol, "carol")
    assert not any(d.exists() for d in group.dirs.values())


# --- a checkout in a private directory, as in root's home ----------------------------


@pytest.fixture
def private_dir():
    root = Path(tempfile.mkdtemp(prefix="dlhub-private-"))
    root.chmod(0o700)  # like /root: no one else may enter
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_runs_from_a_checkout_in_a_private_directory(private_dir, hub_factory):
    """`dlhub up` from a checkout in a 0700 directory: the data dir stays in it, private;
    the users' servers start and reach their starter notebooks and shared folders."""
    hub = RunningHub(private_dir / "checkout", {"culling": {"enabled": False}})
    try:
        hub.start(command=[sys.executable, "-m", "hub_config", "up"])
        banner = hub.log()
        assert "Each user's server runs as a system account of their own" in banner
        support = cgroups.detect()
        if support.version:
            assert f"limits are enforced with cgroup {support.version}." in banner
        else:
            assert "limits are not enforced" in banner
        assert hub.data_dir.is_relative_to(private_dir)
        admin_token = hub.admin().new_token("private checkout")
        token = create_users(hub, admin_token, "dora")["dora"]
        start_server(hub.url, token, "dora")
        got = kernel_json(
            hub,
            token,
            "dora",
            "{'uid': os.getuid(), 'starter': probe('01-keras-digits.ipynb'),"
            " 'shared': write('shared/hello.txt'), 'datasets': probe('datasets')}",
        )
        assert got["uid"] != 0
        assert got == {**got, "starter": "readable", "shared": "written", "datasets": "readable"}
        stop_server(hub.url, token, "dora")
    finally:
        hub.stop()


def test_paths_the_accounts_cannot_reach_stop_start_up(private_dir):
    """A users' directory or user environment inside a 0700 directory: the hub does not
    start, and says in one line which key to change."""
    env = private_dir / "user-env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(Path(sys.executable))
    cases = {
        "local.users_dir": {"users_dir": str(private_dir / "users")},
        "local.user_env": {"user_env": str(env)},
    }
    for key, local in cases.items():
        hub = RunningHub(Path(tempfile.mkdtemp(dir=private_dir)), {"local": local})
        with pytest.raises(RuntimeError, match="hub exited with"):
            hub.start(timeout=30)
        error = [
            line
            for line in hub.log().splitlines()
            if line.startswith("dlhub: ") and " lock taken at " not in line  # the hub's lock
        ]
        assert len(error) == 1 and error[0].startswith(f"dlhub: {key}: "), hub.log()[-2000:]
        assert f"cannot enter {private_dir} (mode 0700)" in error[0]
        hub.stop()
