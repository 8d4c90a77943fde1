"""A real OpenID Connect provider for tests, and the hub's log-in through it over HTTP.

:class:`OidcProvider` runs ``tools/oidc_provider/serve.mjs`` (the certified ``oidc-provider``
library, installed by ``make install``) on a free port of 127.0.0.1 with one client and the
users the test gives; the users live in a JSON file the provider reads at every log-in and
userinfo request, so a test changes groups or removes a user as a directory admin would.
:func:`provider_login` walks the authorization-code flow the way a browser does: the hub's
``/hub/oauth_login``, the provider's own log-in form, the redirect back to the hub.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from hubtest import REPO, free_port, part_missing, wait_for

PROVIDER_DIR = REPO / "tools" / "oidc_provider"
SERVE = PROVIDER_DIR / "serve.mjs"
CLIENT_ID = "dlhub"


def missing() -> list[str]:
    """What the provider needs that is not installed here."""
    out = []
    if not shutil.which("node"):
        out.append("node")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        out.append("tools/oidc_provider/node_modules (run `make install`)")
    return out


class OidcProvider:
    """The provider process, its settings file and its users."""

    def __init__(self, workdir: Path, users: dict[str, dict], redirect_uris: list[str]):
        if missing():
            part_missing(f"the OpenID Connect provider needs {', '.join(missing())}")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_secret = secrets.token_urlsafe(24)
        self.settings_file = self.workdir / "provider.json"
        self.log_file = self.workdir / "provider.log"
        self.settings = {
            "port": self.port,
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": self.client_secret,
                    "redirect_uris": list(redirect_uris),
                }
            ],
            "users": {name: dict(user) for name, user in users.items()},
        }
        self._write()
        self.proc: subprocess.Popen | None = None

    def _write(self) -> None:
        tmp = self.settings_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.settings))
        tmp.replace(self.settings_file)  # the provider never reads half a file

    def start(self, timeout: float = 30) -> OidcProvider:
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            ["node", str(SERVE), str(self.settings_file)],
            cwd=PROVIDER_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the provider exited:\n{self.log()}")
            r = requests.get(self.issuer + "/.well-known/openid-configuration", timeout=2)
            return r.status_code == 200

        wait_for(up, timeout, what="the OpenID Connect provider")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def set_redirect_uris(self, uris: list[str]) -> None:
        """The client's redirect URIs (the hub's ``/hub/oauth_callback``); before start."""
        self.settings["clients"][0]["redirect_uris"] = list(uris)
        self._write()

    # --- the directory, as its admin changes it ---------------------------------------

    def set_groups(self, name: str, groups: list[str]) -> None:
        self.settings["users"][name]["groups"] = list(groups)
        self._write()

    def remove_user(self, name: str) -> None:
        del self.settings["users"][name]
        self._write()

    def add_user(self, name: str, user: dict) -> None:
        self.settings["users"][name] = dict(user)
        self._write()

    def auth_section(self, secret_file: Path, **oidc) -> dict:
        """The hub's ``auth`` section for this provider (the client secret in
        ``secret_file``, which is written here)."""
        secret_file.write_text(self.client_secret + "\n")
        secret_file.chmod(0o600)
        return {
            "type": "oidc",
            "admin_users": [],
            "oidc": {
                "issuer": self.issuer,
                "client_id": CLIENT_ID,
                "client_secret_file": str(secret_file),
                "scopes": ["openid", "profile", "email", "groups"],
                **oidc,
            },
        }

    def start_with_hub(self, hub_factory, config: dict, name: str):
        """A hub of ``hub_factory`` (tests/conftest.py) with ``config`` (its ``auth`` from
        :meth:`auth_section`): its callback made this client's redirect URI, this provider
        started, then the hub; returns the started hub."""
        hub = hub_factory(config, name=name, start=False)
        self.set_redirect_uris([hub.url + "/hub/oauth_callback"])
        self.start()
        return hub.start()


def provider_fixture(users: dict[str, dict]):
    """The module-scoped fixture ``provider``: an :class:`OidcProvider` of ``users``, not
    yet started (:meth:`OidcProvider.start_with_hub` starts it), stopped at the end. A test
    module binds it: ``provider = provider_fixture(USERS)``."""

    @pytest.fixture(scope="module", name="provider")
    def fixture(tmp_path_factory):
        # the redirect URI is the hub's; the hub's port is known once the hub object exists
        p = OidcProvider(tmp_path_factory.mktemp("oidc-provider"), users, redirect_uris=[])
        yield p
        p.stop()

    return fixture


def form_action(page: requests.Response) -> str:
    """The provider's log-in form's target, absolute."""
    match = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert match, f"no form on {page.url}:\n{page.text[:500]}"
    return urljoin(page.url, match.group(1))


def to_provider_form(session: requests.Session, hub_url: str) -> requests.Response:
    """The hub's OAuth log-in, followed to the provider's log-in page."""
    r = session.get(hub_url + "/hub/oauth_login", timeout=30)
    assert r.status_code == 200 and 'name="password"' in r.text, (r.status_code, r.url)
    assert not r.url.startswith(hub_url), r.url
    return r


def submit_password(session, form: requests.Response, name: str, password: str):
    """Submit the provider's form; returns the provider's answer (its form again on a
    wrong password) or the URL of the hub's callback it redirects to."""
    r = session.post(
        form_action(form), data={"username": name, "password": password}, allow_redirects=False
    )
    while r.status_code in (302, 303) and "/oauth_callback" not in r.headers["location"]:
        r = session.get(urljoin(r.url, r.headers["location"]), allow_redirects=False)
    if r.status_code in (302, 303):
        return r.headers["location"]
    return r


def provider_login(session, hub_url: str, name: str, password: str) -> requests.Response:
    """The whole flow; the hub's answer to the callback (not followed: 302 on success)."""
    callback = submit_password(session, to_provider_form(session, hub_url), name, password)
    assert isinstance(callback, str), f"the provider refused {name}: {callback.status_code}"
    return session.get(callback, allow_redirects=False, timeout=60)
