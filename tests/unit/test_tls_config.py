"""hub.tls: the rules the schema cannot say, the traits it maps to, and the start-up check
(hub_config/tls.py). The real proxy serving https: tests/integration/test_tls.py."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from hub_config import mapping, tls
from hub_config.config import ConfigError, validate
from tlstest import TestCA


def traits(raw: dict, data_dir: Path = Path("/srv/dlhub")) -> dict:
    return mapping.traits_for(validate(raw), data_dir, python="/usr/bin/python3")


HTTPS = "https://hub.example.org:8443"


@pytest.mark.parametrize(
    "hub, key, problem",
    [
        ({"tls": {"cert_file": "/c"}}, "hub.tls.key_file", "needed with hub.tls.cert_file"),
        ({"tls": {"key_file": "/k"}}, "hub.tls.cert_file", "needed with hub.tls.key_file"),
        (
            {"bind_url": HTTPS, "tls": {"self_signed": True, "cert_file": "/c", "key_file": "/k"}},
            "hub.tls.self_signed",
            "use either a self-signed certificate or cert_file and key_file",
        ),
        ({"tls": {"self_signed": True}}, "hub.bind_url", "must be an https:// URL"),
        ({"tls": {"redirect_http_port": 8080}}, "hub.tls.redirect_http_port", "needs hub.tls"),
        (
            {"bind_url": HTTPS, "tls": {"self_signed": True, "redirect_http_port": 8443}},
            "hub.tls.redirect_http_port",
            "port 8443 is already hub.bind_url's",
        ),
        (
            {"bind_url": HTTPS, "tls": {"self_signed": True, "redirect_http_port": 8081}},
            "hub.tls.redirect_http_port",
            "port 8081 is already hub.hub_port's",
        ),
        ({"tls": {"hsts": True}}, "hub.tls.hsts", "HSTS needs an https:// hub.bind_url"),
        ({"tls": {"redirect_http_port": 0}}, "hub.tls.redirect_http_port", "at least 1"),
    ],
)
def test_bad_tls_config_names_the_key(hub, key, problem):
    with pytest.raises(ConfigError) as e:
        validate({"hub": hub})
    assert e.value.key == key
    assert problem in e.value.problem


def test_tls_on_kubernetes_is_refused_for_the_ingress():
    with pytest.raises(ConfigError) as e:
        validate(
            {"backend": "kubernetes", "hub": {"bind_url": HTTPS, "tls": {"self_signed": True}}}
        )
    assert e.value.key == "hub.tls"
    assert "Ingress" in e.value.problem


def test_no_tls_changes_nothing():
    t = traits({})
    assert "ssl_cert" not in t["JupyterHub"]
    assert "command" not in t["ConfigurableHTTPProxy"]
    assert t["JupyterHub"]["tornado_settings"]["headers"] == {}
    assert "secure" not in t["JupyterHub"]["tornado_settings"]["cookie_options"]


def test_certificate_redirect_and_hsts_map_to_the_proxy_and_the_hub():
    raw = {
        "hub": {
            "bind_url": HTTPS,
            "tls": {
                "cert_file": "/etc/dlhub/hub.crt",
                "key_file": "/etc/dlhub/hub.key",
                "redirect_http_port": 8080,
                "hsts": True,
            },
        }
    }
    t = traits(raw)
    hub = t["JupyterHub"]
    assert (hub["ssl_cert"], hub["ssl_key"]) == ("/etc/dlhub/hub.crt", "/etc/dlhub/hub.key")
    assert hub["bind_url"] == HTTPS
    assert t["ConfigurableHTTPProxy"]["command"] == [
        "configurable-http-proxy",
        "--redirect-port",
        "8080",
    ]
    assert hub["tornado_settings"]["headers"] == {"Strict-Transport-Security": "max-age=31536000"}
    assert hub["tornado_settings"]["cookie_options"] == {"samesite": "Lax", "secure": True}


def test_self_signed_lives_in_the_data_dir():
    t = traits({"hub": {"bind_url": HTTPS, "tls": {"self_signed": True}}}, Path("/d"))
    assert t["JupyterHub"]["ssl_cert"] == "/d/tls/self-signed.crt"
    assert t["JupyterHub"]["ssl_key"] == "/d/tls/self-signed.key"


def test_dlhub_tls_self_signed_turns_https_on():
    cfg = validate({"hub": {"bind_url": "http://0.0.0.0:8000/lab/"}})
    out = tls.with_environment(cfg, {"DLHUB_TLS": "self-signed"})
    assert out["hub"]["bind_url"] == "https://0.0.0.0:8000/lab/"
    assert out["hub"]["tls"]["self_signed"] is True
    assert cfg["hub"]["tls"]["self_signed"] is False  # the input is left alone
    assert tls.with_environment(cfg, {}) == cfg
    assert tls.environment_problem({"DLHUB_TLS": "yes"}).startswith("DLHUB_TLS='yes'")


def test_a_self_signed_certificate_is_made_once_and_renewed(tmp_path):
    cfg = validate(
        {"hub": {"bind_url": "https://lab.example.org:8443", "tls": {"self_signed": True}}}
    )
    made = tls.prepare(cfg, tmp_path)
    assert made and "lab.example.org" in made
    cert, key = tls.files(cfg, tmp_path)
    assert Path(key).stat().st_mode & 0o777 == 0o600
    first = Path(cert).read_bytes()
    assert tls.prepare(cfg, tmp_path) is None  # kept
    assert Path(cert).read_bytes() == first
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=340)
    assert not tls.self_signed_current(cert, key, "lab.example.org", later)
    assert tls.prepare(cfg, tmp_path, now=later)  # made again near its end
    other = validate({"hub": {"bind_url": "https://elsewhere.test", "tls": {"self_signed": True}}})
    assert tls.prepare(other, tmp_path)  # made again for another host


def test_unusable_files_are_refused_naming_the_key(tmp_path):
    ca = TestCA(tmp_path / "ca")
    cert, key = ca.issue("one")
    _, other_key = ca.issue("two")

    def check(cert_file, key_file):
        raw = {"hub": {"bind_url": HTTPS, "tls": {"cert_file": cert_file, "key_file": key_file}}}
        with pytest.raises(tls.TlsError) as e:
            tls.prepare(validate(raw), tmp_path)
        return e.value

    e = check(str(tmp_path / "missing.crt"), str(key))
    assert e.key == "hub.tls.cert_file" and "No such file or directory" in e.problem
    e = check(str(cert), str(tmp_path / "missing.key"))
    assert e.key == "hub.tls.key_file"
    e = check(str(cert), str(other_key))
    assert e.key == "hub.tls.key_file" and "is not the key of the certificate" in e.problem
    e = check(str(ca.ca_file), str(key))  # the CA's certificate with the server's key
    assert e.key == "hub.tls.key_file"
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    e = check(str(garbage), str(key))
    assert e.key == "hub.tls.cert_file" and "PEM" in e.problem
    assert (
        tls.prepare(
            validate(
                {"hub": {"bind_url": HTTPS, "tls": {"cert_file": str(cert), "key_file": str(key)}}}
            ),
            tmp_path,
        )
        is None
    )
