"""Shared volumes and groups on the docker backend, against a real Docker engine.

alice and bob are in the group `physics` (a read-write group volume), carol is not;
`course` has a volume everyone else may read. datasets is read-only for all.
"""

from __future__ import annotations

import pytest

from dockertest import USER_IMAGE as IMAGE
from dockertest import docker_section, user_container
from hubtest import (
    run_code,
    run_ok,
    start_server,
    stop_server,
    token_api,
)

pytestmark = pytest.mark.docker

#: the name prefix and network of this module's hub (tests/e2e/conftest.py: names)
DOCKER_NAMES = ("dlv", "dlhub-vol")

HOME = "/home/jovyan"


@pytest.fixture(scope="module")
def hub(engine, names, hub_factory):
    # an admin put a dataset into the datasets volume
    engine.volumes.create(f"{names['prefix']}-datasets")
    engine.containers.run(
        IMAGE,
        ["sh", "-c", "echo 'label,value' > /data/mnist.csv"],
        user="0",
        entrypoint=[],
        volumes={f"{names['prefix']}-datasets": {"bind": "/data", "mode": "rw"}},
        network_mode="none",
        remove=True,
    )
    config = {
        "backend": "docker",
        "docker": docker_section(names),
        "volumes": {
            "groups": [{"group": "physics"}, {"group": "course", "others": "read"}],
        },
        "profiles": [
            {"name": "cpu", "default": True, "mem_limit": "1G"},
            {"name": "physics-big", "groups": ["physics"], "mem_limit": "2G"},
        ],
        "culling": {"enabled": False},
    }
    hub = hub_factory(config, name="dockervolumes")
    yield hub
    hub.stop()  # before `names` removes the containers, volumes and network


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def admin_token(admin):
    return admin.new_token("volumes")


@pytest.fixture(scope="module")
def sessions(hub, admin, admin_token):
    out = {name: hub.approved_user(admin, name) for name in ("alice", "bob", "carol")}
    for group, members in {"physics": ["alice", "bob"], "course": ["alice"]}.items():
        token_api(hub.url, admin_token, "POST", f"/hub/api/groups/{group}")
        r = token_api(
            hub.url, admin_token, "POST", f"/hub/api/groups/{group}/users", json={"users": members}
        )
        assert r.status_code == 200, r.text
    return out


@pytest.fixture(scope="module")
def tokens(hub, sessions):
    out = {}
    for name, session in sessions.items():
        out[name] = session.new_token("volumes")
        start_server(hub.url, out[name], name)
    return out


def mounts(engine, names, user) -> dict[str, tuple[str, str, bool]]:
    c = user_container(engine, names, user)
    return {
        m["Destination"]: (m["Type"], m.get("Name", m["Source"]), m["RW"])
        for m in c.attrs["Mounts"]
    }


def py(hub, tokens, user, code) -> str:
    return run_ok(hub.url, tokens[user], user, code)


def test_group_members_share_their_volume(hub, tokens):
    py(
        hub,
        tokens,
        "alice",
        f"open('{HOME}/groups/physics/result.txt', 'w').write('42 from alice')",
    )
    assert py(hub, tokens, "bob", f"print(open('{HOME}/groups/physics/result.txt').read())") == (
        "42 from alice"
    )
    owner = py(
        hub, tokens, "bob", f"import os; print(os.stat('{HOME}/groups/physics/result.txt').st_uid)"
    )
    assert owner == "1000"
    # the shared scratch volume is writable by everyone
    py(hub, tokens, "carol", f"open('{HOME}/shared/hello.txt', 'w').write('hi')")
    assert py(hub, tokens, "alice", f"print(open('{HOME}/shared/hello.txt').read())") == "hi"


def test_a_non_member_neither_sees_nor_mounts_the_group_volume(hub, engine, names, tokens):
    carol = mounts(engine, names, "carol")
    assert f"{HOME}/groups/physics" not in carol
    assert all(name != f"{names['prefix']}-group-physics" for _, name, _ in carol.values())
    assert (
        py(hub, tokens, "carol", f"import os; print(os.path.exists('{HOME}/groups/physics'))")
        == "False"
    )
    # `course` lets others read: carol gets it read-only, alice (a member) read-write
    assert carol[f"{HOME}/groups/course"][2] is False
    assert mounts(engine, names, "alice")[f"{HOME}/groups/course"][2] is True
    out = run_code(hub.url, tokens["carol"], "carol", f"open('{HOME}/groups/course/x', 'w')")
    assert out["status"] == "error" and "Read-only file system" in str(out)


def test_datasets_are_read_only(hub, tokens):
    assert py(hub, tokens, "carol", f"print(open('{HOME}/datasets/mnist.csv').read())") == (
        "label,value"
    )
    out = run_code(hub.url, tokens["carol"], "carol", f"open('{HOME}/datasets/new.csv', 'w')")
    assert out["status"] == "error"
    assert "OSError" in str(out) and "Read-only file system" in str(out)


def test_only_declared_volumes_are_mounted(hub, engine, names, tokens):
    p = names["prefix"]
    assert mounts(engine, names, "alice") == {
        HOME: ("volume", f"{p}-home-alice", True),
        f"{HOME}/datasets": ("volume", f"{p}-datasets", False),
        f"{HOME}/shared": ("volume", f"{p}-shared", True),
        f"{HOME}/groups/physics": ("volume", f"{p}-group-physics", True),
        f"{HOME}/groups/course": ("volume", f"{p}-group-course", True),
    }
    code = "import os; print(*(os.path.exists(p) for p in ('/var/run/docker.sock', '/run')))"
    assert py(hub, tokens, "alice", code) == "False True"
    code = "import os; print(os.path.exists('/run/docker.sock'))"
    assert py(hub, tokens, "alice", code) == "False"


def test_a_user_cannot_read_another_users_home(hub, tokens):
    py(hub, tokens, "bob", f"open('{HOME}/secret.txt', 'w').write('bob only')")
    assert (
        token_api(hub.url, tokens["alice"], "GET", "/user/bob/api/contents/secret.txt").status_code
        == 403
    )
    code = "import glob, os; print(os.listdir('/home'), glob.glob('/home/**/secret.txt', "
    code += "recursive=True))"
    assert py(hub, tokens, "alice", code) == "['jovyan'] []"


@pytest.mark.parametrize(
    "path",
    [
        "/api/contents/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/contents/%2E%2E/%2E%2E/etc/passwd",
        "/api/contents/groups/..%2F..%2F..%2F..%2Fetc%2Fshadow",
        "/files/..%2F..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_path_traversal_through_the_contents_api_is_refused(hub, tokens, path):
    r = token_api(hub.url, tokens["alice"], "GET", f"/user/alice{path}")
    assert r.status_code in (400, 403, 404), (r.status_code, r.text[:200])
    assert "root:" not in r.text


def test_a_hidden_profile_cannot_be_started_even_by_hand(hub, sessions, tokens):
    stop_server(hub.url, tokens["carol"], "carol")
    # through the API
    r = token_api(
        hub.url,
        tokens["carol"],
        "POST",
        "/hub/api/users/carol/server",
        json={"profile": "physics-big"},
    )
    assert r.status_code == 400 and "unknown profile 'physics-big'" in r.json()["message"]
    # the form does not offer it; posting it by hand does not start it
    carol = sessions["carol"]
    assert "physics-big" not in carol.get(carol.url("/hub/spawn")).text
    r = carol.post_form("/hub/spawn", {"profile": "physics-big"})
    assert "unknown profile" in r.text
    model = token_api(hub.url, tokens["carol"], "GET", "/hub/api/users/carol").json()
    assert "" not in model["servers"]
    # a member sees it (on the form of a stopped server)
    stop_server(hub.url, tokens["alice"], "alice")
    alice = sessions["alice"]
    assert "physics-big" in alice.get(alice.url("/hub/spawn")).text


def test_group_changes_take_effect_at_the_next_start(hub, engine, names, admin_token, tokens):
    r = token_api(
        hub.url, admin_token, "DELETE", "/hub/api/groups/physics/users", json={"users": ["bob"]}
    )
    assert r.status_code == 200
    # bob's running server keeps its mounts until it restarts
    assert f"{HOME}/groups/physics" in mounts(engine, names, "bob")
    stop_server(hub.url, tokens["bob"], "bob")
    start_server(hub.url, tokens["bob"], "bob")
    assert f"{HOME}/groups/physics" not in mounts(engine, names, "bob")
