"""Checklist item 4: secrets stay secret.

A whole journey — sign-up, approval, log-in, spawn, JupyterLab, a token, a kernel, stop,
log-out — in a browser-like session on local and docker. Afterwards no secret of that
journey (passwords, cookie values, API tokens, the server's token, the cookie secret, the
scheduler's secret, the proxy's token) is in any URL the browser was sent to, in the hub's
log (which holds the proxy's and, on local, the servers' output too), in any process's
command line, in the container's log, or in ``docker inspect`` of the user's container
(the server's token included); and every file in the data dir is 0600.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from securitykit import BACKENDS, container

from gputest import gpu_hub_config
from hubtest import new_password, run_ok, token_api, wait_for

pytestmark = pytest.mark.integration

#: files of the data dir that hold secrets or state (all must be 0600)
PRIVATE_FILES = {
    "jupyterhub.sqlite",
    "jupyterhub_cookie_secret",
    "gpu-scheduler-secret",
    "gpu-scheduler.sqlite",
    "jupyterhub.pid",
    "jupyterhub-proxy.pid",
}


@pytest.fixture(scope="module", params=BACKENDS)
def hub(request, hubs):
    config = gpu_hub_config([{"name": "cpu", "default": True}], count=1)
    hub = hubs.start(request.param, config, name="secrets")
    yield hub
    hubs.stop(hub)


@pytest.fixture(scope="module")
def journey(hub, request):
    """Everything alice's browser was sent to, and every secret it met."""
    urls: list[str] = []

    def record(r, *args, **kwargs):
        for step in [*r.history, r]:
            urls.append(step.request.url)
            urls.append(step.headers.get("Location", ""))

    admin = hub.admin()
    admin.hooks["response"].append(record)
    password = new_password()
    alice = hub.session()
    alice.hooks["response"].append(record)
    alice.signup("alice", password)
    admin.approve("alice")
    r = alice.login("alice", password)
    # the browser follows the log-in to the spawn, waits, and opens JupyterLab
    alice.get(alice.url(r.headers["Location"]))
    token = alice.new_token("journey")

    def ready():
        model = token_api(hub.url, token, "GET", "/hub/api/users/alice").json()
        return model["servers"].get("", {}).get("ready")

    wait_for(ready, 120, what="alice's server")
    lab = alice.get(alice.url("/user/alice/lab"))
    assert lab.status_code == 200 and lab.url.endswith("/user/alice/lab"), lab.url
    server_token = run_ok(
        hub.url, token, "alice", "import os; print(os.environ['JUPYTERHUB_API_TOKEN'])"
    )
    inspect = logs = None
    token_file = run_ok(
        hub.url, token, "alice", "import os; print(os.path.exists('/tmp/.dlhub-api-token'))"
    )
    if hub.backend == "docker":
        engine = request.getfixturevalue("engine")
        c = container(engine, hub, "alice")
        inspect = json.dumps(c.attrs)
        logs = c.logs().decode(errors="replace")
    # every process's command line, as any account on the host may read it (ps)
    cmdlines = []
    for proc in Path("/proc").iterdir():
        try:
            cmdlines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError):
            continue  # not a process, or gone
    cookies = {
        (who, c.name, c.value)
        for who, s in [("alice", alice), ("admin", admin)]
        for c in s.cookies
    }
    r = alice.api("DELETE", "/users/alice/server")
    assert r.status_code in (202, 204)
    wait_for(lambda: not ready(), 60, what="alice's server to stop")
    alice.get(alice.url("/hub/logout"))
    secrets = {
        "alice's password": password,
        "alice's API token": token,
        "the server's token": server_token,
        "the cookie secret": (hub.data_dir / "jupyterhub_cookie_secret").read_text().strip(),
        "the scheduler's secret": (hub.data_dir / "gpu-scheduler-secret").read_text().strip(),
        "the proxy's token": proxy_token(hub),
    }
    for who, name, value in sorted(cookies):
        # jupyterhub-session-id is no credential: it names a browser session so that
        # log-out can end its tokens (JupyterHub logs it when it sets an XSRF cookie)
        if name != "jupyterhub-session-id":
            secrets[f"{who}'s cookie {name}"] = value
    return {
        "urls": [u for u in urls if u],
        "secrets": secrets,
        "inspect": inspect,
        "logs": logs,
        "token_file": token_file,
        "cmdlines": "\n".join(cmdlines),
    }


def proxy_token(hub) -> str:
    """The proxy's API token, from the environment of the proxy process the hub started."""
    pid = (hub.data_dir / "jupyterhub-proxy.pid").read_text().strip()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    (token,) = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"CONFIGPROXY_AUTH_TOKEN=")]
    assert len(token) >= 16
    return token.decode()


def leaks(text: str, secrets: dict) -> list[str]:
    return [name for name, value in secrets.items() if value and value in text]


def test_no_secret_in_any_url(journey):
    urls = "\n".join(journey["urls"])
    assert "/user/alice/lab" in urls and "/hub/login" in urls  # the journey was recorded
    assert leaks(urls, journey["secrets"]) == []
    # no credential as a query parameter (OAuth's one-time code and state are the
    # protocol's; the hub logs them as [secret])
    for url in journey["urls"]:
        assert not re.search(r"[?&](token|api_token|password|_xsrf)=", url), url


def test_no_secret_in_the_hub_log(hub, journey):
    log = hub.log()
    # the log holds the journey, and the proxy's own log
    assert "alice" in log and "/user/alice/" in log and "[ConfigProxy]" in log
    assert leaks(log, journey["secrets"]) == []
    for line in log.splitlines():
        assert not re.search(r"[?&](token|code|state)=(?!\[secret\]|\.\.\.)", line), line


def test_no_secret_in_any_process_command_line(journey):
    """Command lines are readable by every account on the host: the hub, the proxy, the
    scheduler and the servers get their secrets through the environment or files."""
    cmdlines = journey["cmdlines"]
    assert "jupyterhub" in cmdlines and "configurable-http-proxy" in cmdlines
    assert "gpu_scheduler" in cmdlines
    assert leaks(cmdlines, journey["secrets"]) == []


def test_no_secret_in_the_containers_log(hub, journey):
    if hub.backend != "docker":
        pytest.skip("local servers log into the hub's log (checked above)")
    assert "ServerApp" in journey["logs"]
    assert leaks(journey["logs"], journey["secrets"]) == []


def test_docker_inspect_holds_no_secret(hub, journey):
    """``docker inspect`` of the container shows no secret, not even the server's own
    token: it is handed over in a file that the container's command reads and deletes
    (hub_config/docker_token.py)."""
    if hub.backend != "docker":
        pytest.skip("no container on the local backend")
    assert leaks(journey["inspect"], journey["secrets"]) == []
    env = json.loads(journey["inspect"])["Config"]["Env"]
    assert not [e for e in env if e.startswith(("JUPYTERHUB_API_TOKEN=", "JPY_API_TOKEN="))]
    # the file is gone once the server has started
    assert journey["token_file"] == "False"


def test_data_dir_and_its_files_are_private(hub, journey):
    data = hub.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    present = {p.name for p in data.iterdir()}
    # while the hub runs: the databases, the secrets and both pid files exist
    assert PRIVATE_FILES <= present, PRIVATE_FILES - present
    for path in data.iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (
                path.name,
                oct(path.stat().st_mode),
            )
