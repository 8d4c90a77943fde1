"""Checklist item 8: volumes give what they declare and nothing more.

alice is in the group `physics`, bob is not. On local and docker: paths that climb out of
the home through the contents and files API (plain, encoded, double-encoded, as a write or
a rename) are refused and show nothing of the host; the group volume is alice's, not bob's.
On docker: the datasets volume is read-only even to a write, a chmod or a remount, the
container runs unprivileged without added capabilities, and no Docker socket is mounted.
(Local accounts' reach into datasets, group folders and other homes:
tests/security/test_local_isolation.py; more docker volume cases:
tests/e2e/test_docker_volumes.py.)
"""

from __future__ import annotations

import http.client

import pytest
from securitykit import BACKENDS, container

from hubtest import run_ok, start_server, stop_server, token_api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=BACKENDS)
def hub(request, hubs):
    config = {
        "volumes": {"groups": [{"group": "physics"}]},
        "profiles": [{"name": "cpu", "default": True}],
    }
    hub = hubs.start(request.param, config, name="volumes")
    yield hub
    hubs.stop(hub)


@pytest.fixture(scope="module")
def tokens(hub):
    admin = hub.admin()
    admin_token = admin.new_token("volumes")
    out = {name: hub.approved_user(admin, name).new_token("volumes") for name in ("alice", "bob")}
    assert token_api(hub.url, admin_token, "POST", "/hub/api/groups/physics").status_code == 201
    r = token_api(
        hub.url, admin_token, "POST", "/hub/api/groups/physics/users", json={"users": ["alice"]}
    )
    assert r.status_code == 200
    for name, token in out.items():
        start_server(hub.url, token, name)
    yield out
    for name, token in out.items():
        stop_server(hub.url, token, name)


CLIMBS = [
    "/api/contents/..",
    "/api/contents/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/contents/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/api/contents/%252E%252E%252F%252E%252E%252Fetc%252Fpasswd",
    "/api/contents/groups/physics/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/contents/%2Fetc%2Fpasswd",
    "/api/contents/..%5C..%5C..%5Cetc%5Cpasswd",
    "/files/..%2F..%2F..%2Fetc%2Fpasswd",
    "/files/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
]


def raw_get(hub, token: str, path: str) -> tuple[int, str, str]:
    """GET ``path`` exactly as given (an HTTP library would remove its dot segments):
    status, Location, body."""
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"token {token}"})
        r = conn.getresponse()
        return r.status, r.getheader("Location") or "", r.read().decode(errors="replace")
    finally:
        conn.close()


@pytest.mark.parametrize("path", CLIMBS)
def test_paths_cannot_climb_out_of_the_home(hub, tokens, path):
    status, location, body = raw_get(hub, tokens["alice"], f"/user/alice{path}")
    assert "root:" not in body
    if status in (301, 302):
        # the proxy resolved the dots before routing (e.g. to the hub's /hub/etc/passwd,
        # a 404) or the server normalised the path: a path on the hub, showing nothing
        assert location.startswith("/") and not location.startswith("//"), location
        status, _, body = raw_get(hub, tokens["alice"], location)
        assert "root:" not in body
        assert status in (200, 302, 403, 404), (location, status)
    else:
        assert status in (400, 403, 404), (status, body[:200])


def test_writes_and_renames_cannot_climb_out(hub, tokens):
    api = "/user/alice/api/contents"
    body = {"type": "file", "format": "text", "content": "planted"}
    for path in ("..%2F..%2Ftmp%2Fplanted.txt", "%2E%2E/%2E%2E/tmp/planted.txt"):
        r = token_api(hub.url, tokens["alice"], "PUT", f"{api}/{path}", json=body)
        assert r.status_code in (400, 403, 404), (path, r.status_code)
    r = token_api(hub.url, tokens["alice"], "PUT", f"{api}/mine.txt", json=body)
    assert r.status_code in (200, 201)
    r = token_api(
        hub.url, tokens["alice"], "PATCH", f"{api}/mine.txt", json={"path": "../../tmp/moved.txt"}
    )
    assert r.status_code in (400, 403, 404), r.status_code
    names = {x["name"] for x in token_api(hub.url, tokens["alice"], "GET", api).json()["content"]}
    assert "mine.txt" in names
    code = "import os; print(os.path.exists('/tmp/planted.txt'), os.path.exists('/tmp/moved.txt'))"
    assert run_ok(hub.url, tokens["alice"], "alice", code) == "False False"


def test_the_group_volume_is_for_members_only(hub, tokens):
    code = "import os; print(os.path.isdir(os.path.expanduser('~/groups/physics')))"
    if hub.backend == "local":
        # the local server's working directory is the home
        code = "import os; print(os.path.isdir('groups/physics'))"
    assert run_ok(hub.url, tokens["alice"], "alice", code) == "True"
    assert run_ok(hub.url, tokens["bob"], "bob", code) == "False"
    r = token_api(hub.url, tokens["bob"], "GET", "/user/bob/api/contents/groups/physics")
    assert r.status_code == 404


def test_datasets_stay_read_only_whatever_is_tried(hub, tokens, request):
    if hub.backend != "docker":
        pytest.skip("local: tests/security/test_local_isolation.py (a file mode per account)")
    code = """
import os, subprocess
d = os.path.expanduser("~/datasets")
out = []
for attempt in (
    lambda: open(os.path.join(d, "x"), "w"),
    lambda: os.chmod(d, 0o777),
    lambda: os.mkdir(os.path.join(d, "sub")),
):
    try:
        attempt()
        out.append("done")
    except OSError as e:
        out.append(type(e).__name__)
r = subprocess.run(["mount", "-o", "remount,rw", d], capture_output=True)
out.append("remounted" if r.returncode == 0 else "refused")
print(*out)
"""
    # a read-only file system refuses each change (EROFS), and the user may not remount
    assert run_ok(hub.url, tokens["alice"], "alice", code).split() == [
        "OSError",
        "OSError",
        "OSError",
        "refused",
    ]
    c = container(request.getfixturevalue("engine"), hub, "alice")
    host = c.attrs["HostConfig"]
    assert host["Privileged"] is False and not host.get("CapAdd")
    mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
    assert mounts["/home/jovyan/datasets"]["RW"] is False
    # no Docker socket, nor any host path, is mounted
    assert [m for m in c.attrs["Mounts"] if m["Type"] != "volume"] == []
    assert not [m for m in mounts.values() if "docker.sock" in m.get("Source", "")]
    code = (
        "import os; print(*(os.path.exists(p) for p in "
        "('/var/run/docker.sock', '/run/docker.sock', '/var/lib/docker')))"
    )
    assert run_ok(hub.url, tokens["alice"], "alice", code) == "False False False"
