"""Checklist item 1: another user's server is out of reach.

bob tries alice's running server — its REST API (contents, sessions, kernels,
terminals), her kernel's and her terminal's websockets, her JupyterLab page, and her
server through the hub's API — with his API token and with his browser session (the
hub's cookie and his own server's cookie, also renamed to look like hers). Every attempt
is refused (403, or a way to a log-in page), and never shows alice's files; alice's own
token gets through the same requests (so a refusal is not an accident).
"""

from __future__ import annotations

import pytest
import requests
import websocket
from securitykit import BACKENDS

from hubtest import start_server, stop_server, token_api

pytestmark = pytest.mark.integration

SECRET = "alice-only-7f3c"
OAUTH = "/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&"


@pytest.fixture(scope="module", params=BACKENDS)
def hub(request, hubs):
    hub = hubs.start(request.param, name="crossuser")
    yield hub
    hubs.stop(hub)


@pytest.fixture(scope="module")
def users(hub):
    """Browser sessions of alice and bob, a token each, both servers running; alice has a
    file, a kernel and a terminal."""
    admin = hub.admin()
    sessions = {name: hub.approved_user(admin, name) for name in ("alice", "bob")}
    tokens = {name: s.new_token("cross-user") for name, s in sessions.items()}
    for name, token in tokens.items():
        start_server(hub.url, token, name)
    alice = "/user/alice/api"
    r = token_api(
        hub.url,
        tokens["alice"],
        "PUT",
        f"{alice}/contents/secret.txt",
        json={"type": "file", "format": "text", "content": SECRET},
    )
    assert r.status_code in (200, 201), r.text
    kernel = token_api(hub.url, tokens["alice"], "POST", f"{alice}/kernels", json={}).json()
    terminal = token_api(hub.url, tokens["alice"], "POST", f"{alice}/terminals").json()
    # bob's browser opens his own JupyterLab: he holds his server's cookie too
    r = sessions["bob"].get(sessions["bob"].url("/user/bob/lab"))
    assert r.status_code == 200 and r.url.endswith("/user/bob/lab"), r.url
    assert "jupyterhub-user-bob" in {c.name for c in sessions["bob"].cookies}
    yield {
        "sessions": sessions,
        "tokens": tokens,
        "kernel": kernel["id"],
        "terminal": terminal["name"],
    }
    for name, token in tokens.items():
        stop_server(hub.url, token, name)


def server_requests(users) -> list[tuple[str, str, dict]]:
    """(method, path, json body) on alice's server: reads and changes alike."""
    k, t = users["kernel"], users["terminal"]
    api = "/user/alice/api"
    return [
        ("GET", f"{api}/contents", None),
        ("GET", f"{api}/contents/secret.txt", None),
        ("PUT", f"{api}/contents/planted.txt", {"type": "file", "format": "text", "content": "x"}),
        ("DELETE", f"{api}/contents/secret.txt", None),
        ("GET", f"{api}/sessions", None),
        ("POST", f"{api}/sessions", {"path": "x.ipynb", "type": "notebook", "kernel": {}}),
        ("GET", f"{api}/kernels", None),
        ("GET", f"{api}/kernels/{k}", None),
        ("POST", f"{api}/kernels", {}),
        ("POST", f"{api}/kernels/{k}/interrupt", None),
        ("DELETE", f"{api}/kernels/{k}", None),
        ("GET", f"{api}/terminals", None),
        ("POST", f"{api}/terminals", None),
        ("DELETE", f"{api}/terminals/{t}", None),
        ("GET", "/user/alice/files/secret.txt", None),
        ("GET", "/user/alice/lab", None),
        ("GET", f"/user/alice/lab/terminals/{t}", None),
    ]


def refused(r) -> bool:
    """403, or the way to the hub (log-in, or the OAuth round trip that refuses); never
    alice's content."""
    if SECRET in r.text:
        return False
    if r.status_code == 403:
        return True
    location = r.headers.get("Location", "")
    return r.status_code in (301, 302) and ("/hub/login" in location or OAUTH in location)


def test_her_own_token_reaches_everything(hub, users):
    """The control: the requests bob is refused work for alice."""
    token = users["tokens"]["alice"]
    for path in ("/user/alice/api/contents/secret.txt", "/user/alice/api/kernels"):
        r = token_api(hub.url, token, "GET", path)
        assert r.status_code == 200, (path, r.status_code)
    assert SECRET in token_api(hub.url, token, "GET", "/user/alice/files/secret.txt").text
    assert ws_status(hub, kernel_ws(users), token=token) == 101
    assert ws_status(hub, terminal_ws(users), token=token) == 101


def test_another_users_token_is_refused_on_her_server(hub, users):
    token = users["tokens"]["bob"]
    for method, path, body in server_requests(users):
        r = token_api(hub.url, token, method, path, json=body, allow_redirects=False)
        assert refused(r), (method, path, r.status_code, r.text[:200])
    assert_alice_untouched(hub, users)


def test_another_users_browser_session_is_refused_on_her_server(hub, users):
    bob = users["sessions"]["bob"]
    for method, path, body in server_requests(users):
        # cookies only (no Authorization header); the XSRF header a page would send
        r = bob.request(
            method,
            bob.url(path),
            json=body,
            headers={"X-XSRFToken": bob.xsrf()},
            allow_redirects=False,
        )
        assert refused(r), (method, path, r.status_code, r.text[:200])
        # following the redirects (the OAuth round trip through the hub) ends refused
        if method == "GET":
            r = bob.get(bob.url(path))
            assert r.status_code == 403 and SECRET not in r.text, (path, r.status_code, r.url)
    assert_alice_untouched(hub, users)


def test_his_own_servers_cookie_renamed_is_refused(hub, users):
    """The server cookie is signed for its name: bob's cannot pass for alice's."""
    bob = users["sessions"]["bob"]
    value = next(c.value for c in bob.cookies if c.name == "jupyterhub-user-bob")

    for name in ("jupyterhub-user-alice", "jupyterhub-user-bob"):
        r = requests.get(
            hub.url + "/user/alice/api/contents/secret.txt",
            cookies={name: value},
            allow_redirects=False,
            timeout=30,
        )
        assert refused(r), (name, r.status_code)
    cookie = f"jupyterhub-user-alice={value}; jupyterhub-user-bob={value}"
    assert ws_status(hub, kernel_ws(users), cookie=cookie) != 101


def kernel_ws(users) -> str:
    return f"/user/alice/api/kernels/{users['kernel']}/channels"


def terminal_ws(users) -> str:
    return f"/user/alice/terminals/websocket/{users['terminal']}"


def ws_status(hub, path: str, token: str | None = None, cookie: str | None = None) -> int:
    """The status of a websocket handshake: 101 when it opened."""
    header = [f"Authorization: token {token}"] if token else []
    url = hub.url.replace("http://", "ws://") + path
    try:
        ws = websocket.create_connection(url, header=header, cookie=cookie, timeout=30)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    ws.close()
    return 101


@pytest.mark.parametrize("path", [kernel_ws, terminal_ws], ids=["kernel", "terminal"])
def test_another_user_cannot_open_her_websockets(hub, users, path):
    bob = users["sessions"]["bob"]
    assert ws_status(hub, path(users), token=users["tokens"]["bob"]) == 403
    cookie = "; ".join(f"{c.name}={c.value}" for c in bob.cookies)
    assert ws_status(hub, path(users), cookie=cookie) in (302, 403)


def test_another_user_cannot_start_stop_or_read_her_server_through_the_hub(hub, users):
    token = users["tokens"]["bob"]
    for method, path in [
        ("GET", "/hub/api/users/alice"),
        ("DELETE", "/hub/api/users/alice/server"),
        ("POST", "/hub/api/users/alice/server"),
        ("GET", "/hub/api/users/alice/tokens"),
        ("POST", "/hub/api/users/alice/tokens"),
    ]:
        r = token_api(hub.url, token, method, path)
        assert r.status_code in (403, 404), (method, path, r.status_code)
    bob = users["sessions"]["bob"]
    r = bob.post_form("/hub/spawn/alice", {}, allow_redirects=False)
    assert r.status_code in (403, 404), r.status_code
    assert_alice_untouched(hub, users)


def assert_alice_untouched(hub, users):
    token = users["tokens"]["alice"]
    model = token_api(hub.url, token, "GET", "/hub/api/users/alice").json()
    assert model["servers"][""]["ready"]
    r = token_api(hub.url, token, "GET", "/user/alice/api/contents/secret.txt")
    assert r.status_code == 200 and r.json()["content"] == SECRET
    names = {
        x["name"]
        for x in token_api(hub.url, token, "GET", "/user/alice/api/contents").json()["content"]
    }
    assert "planted.txt" not in names
    kernels = token_api(hub.url, token, "GET", "/user/alice/api/kernels").json()
    assert users["kernel"] in {k["id"] for k in kernels}
    terminals = token_api(hub.url, token, "GET", "/user/alice/api/terminals").json()
    assert users["terminal"] in {t["name"] for t in terminals}
