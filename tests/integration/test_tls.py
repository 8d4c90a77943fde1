"""HTTPS on the local backend: the real proxy serves the hub with a certificate from the
test's own CA (tests/tlstest.py); clients trust that CA and nothing else.

One hub for the module: ``hub.tls`` with the CA-signed certificate, a plain-http redirect
port and HSTS. Start-up refusals run ``jupyterhub -f`` and ``dlhub up`` on bad configs;
``make up TLS=self-signed`` is ``dlhub up --tls self-signed``.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from hubtest import CONFIG_PY, free_port, new_password, setup_token_in, wait_for
from tlstest import TestCA

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def redirect_port():
    return free_port()


@pytest.fixture(scope="module")
def hub(hub_factory, ca, redirect_port):
    config = {"culling": {"enabled": False}}
    return ca.https_hub(hub_factory, config, "tls", redirect_http_port=redirect_port, hsts=True)


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


def cookie_headers(response: requests.Response) -> list[str]:
    """Every Set-Cookie header of a response and the redirects before it."""
    found = []
    for r in [*response.history, response]:
        found.extend(v for k, v in r.raw.headers.items() if k.lower() == "set-cookie")
    return found


def test_the_hub_is_served_over_https_with_the_given_certificate(hub, ca):
    assert hub.url.startswith("https://")
    r = requests.get(f"{hub.url}/hub/login", verify=str(ca.ca_file), timeout=10)
    assert r.status_code == 200
    assert r.url.startswith("https://")
    # the certificate on the wire is the one of hub.tls.cert_file
    host, port = "127.0.0.1", int(hub.url.rsplit(":", 1)[1])
    served = ssl.get_server_certificate((host, port))
    expected = Path(hub.config["hub"]["tls"]["cert_file"]).read_text()
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(expected)


def test_a_client_that_does_not_trust_the_ca_is_refused(hub):
    # real TLS: without the test's CA the certificate does not verify
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{hub.url}/hub/login", timeout=10)


def test_log_in_over_https_and_every_cookie_is_secure(hub, admin):
    s = hub.session()
    password = new_password()
    s.signup("carol", password)
    admin.approve("carol")
    s.get(s.url("/hub/login"))
    r = s.post_form("/hub/login", {"username": "carol", "password": password})
    assert r.status_code == 200 and r.url.startswith("https://")
    cookies = cookie_headers(r)
    names = {c.split("=", 1)[0] for c in cookies}
    assert {"jupyterhub-hub-login", "jupyterhub-session-id"} <= names, cookies
    for cookie in cookies:
        attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
        assert "secure" in attributes, cookie
    # the session works over https
    assert s.api("GET", "/user").json()["name"] == "carol"


def test_the_sign_up_page_drops_its_plain_http_warning(hub):
    # NativeAuthenticator's page unhides its "unsecured HTTP" warning only on http:
    r = requests.get(f"{hub.url}/hub/signup", verify=hub.verify, timeout=10)
    assert r.status_code == 200
    assert 'window.location.protocol === "http:"' in r.text
    assert "id='insecure-login-warning' class='hidden'" in r.text


def test_plain_http_redirects_to_https(hub, redirect_port):
    r = requests.get(
        f"http://127.0.0.1:{redirect_port}/hub/login?next=%2Fhub%2Fhome",
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 301
    assert r.headers["Location"] == f"{hub.url}/hub/login?next=%2Fhub%2Fhome"
    # followed, it lands on the https page
    r = requests.get(f"http://127.0.0.1:{redirect_port}/hub/login", verify=hub.verify, timeout=10)
    assert r.status_code == 200 and r.url == f"{hub.url}/hub/login"


def test_hsts_header_on_hub_pages(hub):
    r = requests.get(f"{hub.url}/hub/login", verify=hub.verify, timeout=10)
    assert r.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_a_user_server_is_reached_over_https_with_secure_cookies(hub, admin):
    r = admin.api("POST", "/users/admin/server", json={})
    assert r.status_code in (201, 202), r.text

    def ready():
        server = admin.api("GET", "/users/admin").json()["servers"].get("")
        return server and server["ready"]

    wait_for(ready, 120, interval=0.5, what="admin's server")
    # the browser's way in: the hub's OAuth hand-off to the server, all over https
    r = admin.get(admin.url("/user/admin/lab"))
    assert r.status_code == 200, r.text
    assert all(h.url.startswith("https://") for h in [*r.history, r])
    # the cookies the server sets (not the ones it clears, which carry nothing)
    server_cookies = [
        c
        for c in cookie_headers(r)
        if c.startswith("jupyterhub-user-admin") and not c.split(";")[0].endswith('=""')
    ]
    assert server_cookies, cookie_headers(r)
    for cookie in server_cookies:
        assert "secure" in [a.strip().lower() for a in cookie.split(";")[1:]], cookie


# --- start-up refusals ------------------------------------------------------------------------


def run_both(tmp_path: Path, config: dict) -> tuple[Path, list[subprocess.CompletedProcess]]:
    """``jupyterhub -f`` and ``dlhub up`` on ``config``; both are expected to stop."""
    path = tmp_path / "dlhub.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, DLHUB_CONFIG=str(path))
    commands = [
        [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(CONFIG_PY)],
        [sys.executable, "-m", "hub_config", "up", "--config", str(path)],
    ]
    runs = [
        subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        for cmd in commands
    ]
    return path, runs


def test_a_missing_certificate_stops_start_up_naming_the_key(tmp_path, ca):
    _, key = ca.issue("orphan")
    config = {
        "hub": {
            "bind_url": f"https://127.0.0.1:{free_port()}",
            "tls": {"cert_file": str(tmp_path / "nowhere.crt"), "key_file": str(key)},
        }
    }
    path, runs = run_both(tmp_path, config)
    for run in runs:
        assert run.returncode != 0
        assert (
            f"invalid dlhub config {path}: hub.tls.cert_file: cannot read "
            f"{tmp_path / 'nowhere.crt'} (No such file or directory)" in run.stderr
        ), run.stderr


def test_a_key_of_another_certificate_stops_start_up(tmp_path, ca):
    cert, _ = ca.issue("one")
    _, other_key = ca.issue("two")
    config = {
        "hub": {
            "bind_url": f"https://127.0.0.1:{free_port()}",
            "tls": {"cert_file": str(cert), "key_file": str(other_key)},
        }
    }
    path, runs = run_both(tmp_path, config)
    for run in runs:
        assert run.returncode != 0
        assert f"invalid dlhub config {path}: hub.tls.key_file: " in run.stderr, run.stderr
        assert "is not the key of the certificate" in run.stderr


def test_a_certificate_with_an_http_bind_url_stops_start_up(tmp_path, ca):
    cert, key = ca.issue("three")
    config = {"hub": {"tls": {"cert_file": str(cert), "key_file": str(key)}}}
    path, runs = run_both(tmp_path, config)
    for run in runs:
        assert run.returncode != 0
        assert f"invalid dlhub config {path}: hub.bind_url: must be an https:// URL" in run.stderr
    assert not (tmp_path / "data").exists()


def test_dlhub_up_with_a_self_signed_certificate_says_so(hub_factory):
    hub = hub_factory({"culling": {"enabled": False}}, name="selfsigned", start=False)
    hub.url = hub.url.replace("http://", "https://")
    cert = hub.data_dir / "tls" / "self-signed.crt"
    hub.verify = str(cert)  # the certificate is its own trust anchor
    hub.start(command=[sys.executable, "-m", "hub_config", "up", "--tls", "self-signed"])
    banner = hub.log()
    assert f"Open {hub.url}/hub/ in your browser: HTTPS with a self-signed certificate" in banner
    assert f"First admin: open {hub.url}/hub/first-admin#token=" in banner
    assert oct((hub.data_dir / "tls" / "self-signed.key").stat().st_mode & 0o777) == "0o600"
    admin, password = hub.session(), new_password()
    admin.first_admin("admin", password, setup_token_in(banner))
    admin.login("admin", password)
    assert admin.api("GET", "/user").json()["admin"] is True
    # a restart keeps the certificate
    before = cert.read_bytes()
    hub.stop()
    hub.start(command=[sys.executable, "-m", "hub_config", "up", "--tls", "self-signed"])
    wait_for(lambda: cert.exists(), 5, what="the certificate")
    assert cert.read_bytes() == before
