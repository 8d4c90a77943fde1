"""A real dlhub hub for tests: started as `jupyterhub` with a platform config, driven over HTTP.

:class:`RunningHub` starts the hub (which starts the real configurable-http-proxy and,
on the local backend, real JupyterLab processes) in a temporary directory with free
ports, and stops it by its pid. :class:`Browserless` is a ``requests`` session that
signs up, logs in and calls the REST API the way a browser or script would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from pathlib import Path
from urllib.parse import quote

import requests
import websocket
import yaml

from hub_config import first_admin

REPO = Path(__file__).resolve().parents[1]
CONFIG_PY = REPO / "hub_config" / "jupyterhub_config.py"


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def part_missing(message: str) -> None:
    """A suite's engine, browser or image is missing: a loud skip locally, a failure in CI."""
    import pytest

    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_root() -> bool:
    return os.geteuid() == 0


def user_env() -> Path:
    """The user environment `make` builds: outside the checkout when run as root (every
    user's account runs it), `.venv-user` otherwise."""
    default = Path("/opt/dlhub/user-env") if as_root() else REPO / ".venv-user"
    return Path(os.environ.get("DLHUB_USER_ENV") or default)


def docker_engine_with(*images: str):
    """A Docker client, once the engine answers and the images exist (else part_missing)."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
        for image in images:
            client.images.get(image)
    except docker.errors.DockerException as e:
        part_missing(f"needs a Docker engine and {', '.join(images)} (`make images`): {e}")
    return client


def remove_docker_objects(engine, prefix: str, network: str) -> None:
    """Remove the containers and volumes named ``prefix...`` and the network ``network``."""
    for container in engine.containers.list(all=True, filters={"name": prefix}):
        container.remove(force=True)
    for volume in engine.volumes.list(filters={"name": prefix}):
        volume.remove(force=True)
    for net in engine.networks.list(names=[network]):
        net.remove()
    from hub_config.host_firewall import forget_removed_networks

    forget_removed_networks()  # the host's rules of the network that is gone


def missing_parts() -> list[str]:
    """What a real hub needs that is not installed here (empty when ready)."""
    missing = []
    if not (user_env() / "bin" / "jupyterhub-singleuser").exists():
        missing.append(f"user environment {user_env()} (run `make install`)")
    proxy = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
    if not proxy.exists():
        missing.append("configurable-http-proxy (run `make install`)")
    return missing


def wait_for(predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except (requests.ConnectionError, OSError) as e:
            result, last = None, e
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


class RunningHub:
    """A hub process with its own data dir and ports.

    Run as root on the local backend, the hub makes a system account per user: each hub
    gets its own account prefix (``dlt<hex>-``) and a users' and volumes' directory that
    every account can reach (pytest's temporary tree is root's alone); its accounts and
    groups are removed when it stops, the directories when the object goes.
    """

    def __init__(self, workdir: Path, config: dict | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        # https when the config gives the proxy a certificate (hub.tls)
        tls = ((config or {}).get("hub") or {}).get("tls") or {}
        scheme = "https" if tls.get("cert_file") or tls.get("self_signed") else "http"
        base = {
            "hub": {
                "bind_url": f"{scheme}://127.0.0.1:{self.port}",
                "hub_port": free_port(),
                "proxy_api_port": free_port(),
                "data_dir": "data",
            },
            "local": {"user_env": str(user_env())},
            # every test signs its users up from 127.0.0.1; the sign-up throttle has its
            # own tests (security/test_signup_limits.py), which turn it on
            "auth": {"throttle_signups": 0},
        }
        self.shared_root: Path | None = None
        if as_root() and (config or {}).get("backend", "local") == "local":
            self.shared_root = Path(tempfile.mkdtemp(prefix="dlhub-test-"))
            self.shared_root.chmod(0o711)
            weakref.finalize(self, shutil.rmtree, self.shared_root, True)
            base["local"].update(
                users_dir=str(self.shared_root / "users"),
                volumes_dir=str(self.shared_root / "volumes"),
                account_prefix=f"dlt{uuid.uuid4().hex[:5]}-",
            )
        self.config = _merge(base, config or {})
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        #: what ``requests`` checks the hub's certificate with (a CA file under https)
        self.verify: bool | str = True
        self.config_file = self.workdir / "dlhub.yaml"
        self.config_file.write_text(yaml.safe_dump(self.config))
        self.log_file = self.workdir / "hub.log"
        self.proc: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def system_accounts(self) -> bool:
        """Whether each user's server runs as an account of its own (local, as root)."""
        return self.shared_root is not None

    def account(self, user: str) -> str | None:
        """The system account of ``user``'s server (None: the hub's own account)."""
        if not self.system_accounts:
            return None
        from hub_config.accounts import account_name

        return account_name(self.config["local"]["account_prefix"], user)

    def home(self, user: str) -> Path:
        """``user``'s home on the local backend."""
        from hub_config.naming import safe_slug

        if self.system_accounts:
            return Path(self.config["local"]["users_dir"]) / self.account(user)
        return Path(self.config["local"].get("users_dir") or self.data_dir / "users") / safe_slug(
            user
        )

    def volumes_dir(self) -> Path:
        """Where the local backend keeps dlhub's own shared folders."""
        return Path(self.config["local"].get("volumes_dir") or self.data_dir / "volumes")

    def remove_accounts(self) -> None:
        """Remove the system accounts and groups this hub made (its prefix and mark)."""
        if not self.system_accounts:
            return
        import grp
        import pwd

        from hub_config.accounts import is_dlhub_account, users_group

        prefix = self.config["local"]["account_prefix"]
        for entry in pwd.getpwall():
            if entry.pw_name.startswith(prefix) and is_dlhub_account(entry.pw_gecos):
                subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)
        base = users_group(prefix).removesuffix("users")
        for group in grp.getgrall():
            if group.gr_name.startswith(base):
                subprocess.run(["groupdel", group.gr_name], capture_output=True, check=False)
        # the servers' cgroups go at their stop; any left (a hub killed mid-stop) go here
        for parent in ("memory/dlhub", "cpu/dlhub", "dlhub"):
            for group in Path("/sys/fs/cgroup", parent).glob(f"{prefix}*"):
                try:
                    group.rmdir()
                except OSError:
                    pass

    def env(self) -> dict:
        env = dict(os.environ)
        env["DLHUB_CONFIG"] = str(self.config_file)
        env["PATH"] = os.pathsep.join(
            [str(REPO / "node_modules" / ".bin"), str(Path(sys.executable).parent), env["PATH"]]
        )
        return env

    def start(self, timeout: float = 60, command: list[str] | None = None) -> RunningHub:
        """Start the hub (``jupyterhub -f``, or ``command``) and wait until it answers."""
        command = command or [
            str(Path(sys.executable).parent / "jupyterhub"),
            "-f",
            str(CONFIG_PY),
        ]
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            # a hub started from a background job would inherit an ignored SIGINT
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
            r = requests.get(f"{self.url}/hub/api/", timeout=2, verify=self.verify)
            return r.status_code == 200

        wait_for(up, timeout, what="the hub to answer through the proxy")
        return self

    def stop(self, timeout: float = 60, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            self.remove_accounts()
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
        finally:
            self.remove_accounts()

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- helpers over HTTP ---------------------------------------------------------

    def session(self) -> Browserless:
        s = Browserless(self.url)
        if self.verify is not True:
            # a CA file of the test's; requests would take $REQUESTS_CA_BUNDLE over it
            s.verify, s.trust_env = self.verify, False
        return s

    def setup_token(self) -> str:
        """A new one-time token for the first admin's setup page, as `dlhub up` makes it."""
        return first_admin.issue(first_admin.token_path(self.data_dir))

    def admin(self, name: str = "admin", password: str | None = None) -> Browserless:
        """Make the configured admin's account with a one-time setup token (as an operator
        does with the link `dlhub up` prints) and log in; return the logged-in session."""
        password = password or new_password()
        s = self.session()
        s.first_admin(name, password, self.setup_token())
        s.login(name, password)
        return s

    def approved_user(self, admin: Browserless, name: str) -> Browserless:
        """Sign up ``name``, have ``admin`` approve them, log them in."""
        password = new_password()
        s = self.session()
        s.signup(name, password)
        admin.approve(name)
        s.login(name, password)
        return s


def setup_token_in(banner: str) -> str:
    """The one-time token in the setup link of a `dlhub up` banner (or a log holding it)."""
    match = re.search(r"/hub/first-admin#token=([\w-]+)", banner)
    if not match:
        raise AssertionError(f"no first-admin setup link in:\n{banner[-3000:]}")
    return match.group(1)


def new_password() -> str:
    return "pw-" + uuid.uuid4().hex


class Browserless(requests.Session):
    """A cookie session against one hub, with the hub's forms and API."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base
        self.username: str | None = None

    def url(self, path: str) -> str:
        return self.base + path

    def xsrf(self) -> str:
        for cookie in self.cookies:
            if cookie.name == "_xsrf":
                return cookie.value
        self.get(self.url("/hub/login"))
        return next(c.value for c in self.cookies if c.name == "_xsrf")

    def post_form(self, path: str, data: dict, **kw) -> requests.Response:
        return self.post(self.url(path), data={**data, "_xsrf": self.xsrf()}, **kw)

    def signup(self, name: str, password: str) -> requests.Response:
        self.get(self.url("/hub/signup"))
        r = self.post_form(
            "/hub/signup",
            {
                "username": name,
                "signup_password": password,
                "signup_password_confirmation": password,
            },
        )
        r.raise_for_status()
        return r

    def first_admin(self, name: str, password: str, token: str) -> requests.Response:
        """Make the admin account ``name`` on the setup page of the one-time ``token``."""
        self.get(self.url("/hub/first-admin")).raise_for_status()  # the token stays here
        r = self.post_form(
            "/hub/first-admin",
            {"token": token, "username": name, "password": password,
             "password_confirmation": password},
        )  # fmt: skip
        r.raise_for_status()
        return r

    def login(self, name: str, password: str) -> requests.Response:
        self.get(self.url("/hub/login"))
        r = self.post_form(
            "/hub/login", {"username": name, "password": password}, allow_redirects=False
        )
        if r.status_code != 302:
            raise AssertionError(f"login of {name} failed: {r.status_code}")
        self.username = name
        return r

    def approve(self, name: str) -> None:
        """Approve ``name``'s sign-up with the authorize page's form (a POST with XSRF)."""
        r = self.post_form(f"/hub/authorize/{quote(name, safe='')}", {"action": "approve"})
        r.raise_for_status()

    def api(self, method: str, path: str, **kw) -> requests.Response:
        """Call the hub REST API with the session cookie (and the XSRF header it needs)."""
        headers = {"X-XSRFToken": self.xsrf(), **kw.pop("headers", {})}
        return self.request(method, self.url("/hub/api" + path), headers=headers, **kw)

    def new_token(self, note: str = "test") -> str:
        r = self.api("POST", f"/users/{self.username}/tokens", json={"note": note})
        r.raise_for_status()
        return r.json()["token"]

    def me(self) -> dict:
        """The hub's model of the logged-in user (``GET /hub/api/user``)."""
        r = self.api("GET", "/user")
        assert r.status_code == 200, r.text
        return r.json()

    def spawn_form(self) -> str:
        """The hub's spawn page (the profiles this user may pick)."""
        r = self.get(self.url("/hub/spawn"))
        assert r.status_code == 200, r.status_code
        return r.text

    def start_server(self, name: str, options: dict | None = None, timeout: float = 120):
        """Start ``name``'s default server with this session's cookie; wait until ready."""
        r = self.api("POST", f"/users/{name}/server", json=options or {})
        assert r.status_code in (201, 202), r.text

        def ready():
            server = self.api("GET", f"/users/{name}").json()["servers"].get("")
            return server and server["ready"]

        wait_for(ready, timeout, interval=0.5, what=f"{name}'s server")

    def stop_server(self, name: str, timeout: float = 60) -> None:
        """Stop ``name``'s default server with this session's cookie; wait until it is gone."""
        r = self.api("DELETE", f"/users/{name}/server")
        assert r.status_code in (202, 204), r.text
        wait_for(
            lambda: "" not in self.api("GET", f"/users/{name}").json()["servers"],
            timeout,
            what=f"{name}'s server to stop",
        )


def token_api(base: str, token: str, method: str, path: str, **kw) -> requests.Response:
    """Call a hub or server API with a token in the Authorization header (never the URL)."""
    headers = {"Authorization": f"token {token}", **kw.pop("headers", {})}
    return requests.request(method, base + path, headers=headers, timeout=30, **kw)


def server_path(user: str, server: str = "") -> str:
    """The REST API path of ``user``'s default server, or of their named ``server``."""
    return f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"


def start_server(
    base: str, token: str, user: str, options: dict | None = None, timeout=120, server: str = ""
):
    """Start ``user``'s default server (or named ``server``) through the REST API and wait
    until it is ready."""
    r = token_api(base, token, "POST", "/hub/api" + server_path(user, server), json=options or {})
    if r.status_code not in (201, 202):
        raise AssertionError(f"spawn of {user}:{server} refused: {r.status_code} {r.text}")

    def ready():
        model = token_api(base, token, "GET", f"/hub/api/users/{user}").json()
        found = model["servers"].get(server)
        return found if found and found["ready"] else None

    return wait_for(ready, timeout, interval=0.5, what=f"{user}:{server} to be ready")


def stop_server(base: str, token: str, user: str, timeout=60, server: str = "") -> None:
    r = token_api(base, token, "DELETE", "/hub/api" + server_path(user, server))
    assert r.status_code in (202, 204), r.text

    def stopped():
        model = token_api(base, token, "GET", f"/hub/api/users/{user}").json()
        return server not in model["servers"]

    wait_for(stopped, timeout, what=f"{user}:{server} to stop")


def run_code(
    base: str, token: str, user: str, code: str, timeout: float = 180, server: str = ""
) -> dict:
    """Run ``code`` in a new kernel of ``user``'s server (default, or named ``server``)
    over the Jupyter websocket protocol.

    Waits for both the shell's execute_reply and iopub's idle status: the reply can
    arrive before the cell's last output.

    Returns ``{"stdout": str, "stderr": str, "status": "ok"|"error", "error": {...}}``
    (``stderr``: what the notebook would show in red, the kernel's file descriptor 2
    included).
    """
    prefix = f"/user/{user}/{server}/api" if server else f"/user/{user}/api"
    r = token_api(base, token, "POST", f"{prefix}/kernels", json={"name": "python3"})
    r.raise_for_status()
    kernel = r.json()["id"]
    ws_url = base.replace("http://", "ws://") + f"{prefix}/kernels/{kernel}/channels"
    ws = websocket.create_connection(
        ws_url, header=[f"Authorization: token {token}"], timeout=timeout
    )
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": user,
                    "session": uuid.uuid4().hex,
                    "msg_type": "execute_request",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False, "store_history": False},
                "channel": "shell",
            }
        )
    )
    out: dict = {"stdout": "", "stderr": "", "status": None, "error": None}
    idle = False  # iopub's idle status comes after the cell's last output
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream" and msg["content"]["name"] in ("stdout", "stderr"):
                out[msg["content"]["name"]] += msg["content"]["text"]
            elif kind == "error":
                out["error"] = msg["content"]
            elif kind == "execute_reply":
                out["status"] = msg["content"]["status"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            if idle and out["status"] is not None:
                return out
    finally:
        ws.close()
        token_api(base, token, "DELETE", f"{prefix}/kernels/{kernel}")
    raise TimeoutError(f"no execute_reply and idle status within {timeout}s; got {out}")


def run_ok(
    base: str, token: str, user: str, code: str, timeout: float = 180, server: str = ""
) -> str:
    """Run ``code`` as :func:`run_code` does; it must not fail. Its stdout, stripped."""
    out = run_code(base, token, user, code, timeout, server)
    assert out["status"] == "ok", out
    return out["stdout"].strip()


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
