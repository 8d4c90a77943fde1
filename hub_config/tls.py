"""HTTPS on the local and docker backends: the hub's proxy serves the public port with the
certificate and key of ``hub.tls``.

configurable-http-proxy terminates TLS (JupyterHub's ``ssl_cert``/``ssl_key`` become its
``--ssl-cert``/``--ssl-key``); ``redirect_http_port`` adds its ``--redirect-port``, a plain
http listener that answers every request with a redirect to https. Behind the proxy, the
hub's API and the user servers speak plain http on this host (local) or on the users'
Docker network (docker). On Kubernetes the chart's Ingress serves TLS instead.

Pure parts: :func:`problems` (rules the schema cannot say), :func:`files` (where the
certificate and key are), :func:`with_environment` (``DLHUB_TLS=self-signed``, as
``make up TLS=self-signed`` sets it). At start-up :func:`prepare` makes the self-signed
certificate when asked to and checks that the files can be read and belong together,
raising :class:`TlsError` naming the key.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import os
import ssl
from pathlib import Path
from urllib.parse import urlparse

#: Environment variable that turns on a self-signed certificate without editing the config.
TLS_ENV = "DLHUB_TLS"

#: Where a self-signed certificate and its key are kept, in the data dir.
SELF_SIGNED_DIR = "tls"
SELF_SIGNED_CERT = "self-signed.crt"
SELF_SIGNED_KEY = "self-signed.key"

#: Days a self-signed certificate is valid; it is made again when fewer than
#: ``RENEW_DAYS`` are left or the bind address's host is not among its names.
SELF_SIGNED_DAYS = 365
RENEW_DAYS = 30

#: ``Strict-Transport-Security`` sent with every hub page when ``hub.tls.hsts`` is true.
HSTS_HEADER = "max-age=31536000"


class TlsError(ValueError):
    """A certificate or key of ``hub.tls`` cannot be used; ``key`` is the config key."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def enabled(cfg: dict) -> bool:
    """Whether the hub's proxy serves https itself."""
    tls = cfg["hub"]["tls"]
    return bool(tls["cert_file"] or tls["key_file"] or tls["self_signed"])


def is_https(cfg: dict) -> bool:
    """Whether browsers reach the hub over https (``hub.bind_url``), by the proxy's own
    certificate or by TLS ended in front of it (an Ingress, a load balancer)."""
    return urlparse(cfg["hub"]["bind_url"]).scheme == "https"


def with_environment(cfg: dict, environ) -> dict:
    """``cfg`` with ``DLHUB_TLS=self-signed`` applied: a self-signed certificate, and the
    bind URL's scheme https. Any other value of the variable is left to
    :func:`environment_problem`."""
    if environ.get(TLS_ENV) != "self-signed":
        return cfg
    out = copy.deepcopy(cfg)
    hub = out["hub"]
    if not (hub["tls"]["cert_file"] or hub["tls"]["key_file"]):
        hub["tls"]["self_signed"] = True
    scheme, sep, rest = hub["bind_url"].partition("://")
    if scheme == "http":
        hub["bind_url"] = "https" + sep + rest
    return out


def environment_problem(environ) -> str | None:
    value = environ.get(TLS_ENV)
    if value in (None, "", "self-signed"):
        return None
    return f"{TLS_ENV}={value!r} is not understood; allowed: self-signed (or unset)"


def problems(cfg: dict) -> list[tuple[str, str]]:
    """(key, what is wrong) for each rule of ``hub.tls`` the schema cannot say; empty when
    the section is sound."""
    hub, tls = cfg["hub"], cfg["hub"]["tls"]
    out: list[tuple[str, str]] = []
    if tls["cert_file"] and not tls["key_file"]:
        out.append(("hub.tls.key_file", "needed with hub.tls.cert_file (the certificate's key)"))
    if tls["key_file"] and not tls["cert_file"]:
        out.append(("hub.tls.cert_file", "needed with hub.tls.key_file (the key's certificate)"))
    if tls["self_signed"] and (tls["cert_file"] or tls["key_file"]):
        out.append(
            (
                "hub.tls.self_signed",
                "use either a self-signed certificate or cert_file and key_file, not both",
            )
        )
    on = enabled(cfg)
    if on and cfg["backend"] == "kubernetes":
        out.append(
            (
                "hub.tls",
                "on kubernetes the chart's Ingress serves https (ingress.tls); "
                "leave hub.tls unset and give hub.bind_url an https:// URL",
            )
        )
    if on and not is_https(cfg):
        out.append(
            (
                "hub.bind_url",
                f"must be an https:// URL when hub.tls has a certificate, got {hub['bind_url']!r}",
            )
        )
    port = tls["redirect_http_port"]
    if port is not None:
        if not on:
            out.append(
                (
                    "hub.tls.redirect_http_port",
                    "the redirect to https needs hub.tls's certificate "
                    "(cert_file and key_file, or self_signed)",
                )
            )
        taken = {
            "hub.bind_url": urlparse(hub["bind_url"]).port or 443,
            "hub.hub_port": hub["hub_port"],
            "hub.proxy_api_port": hub["proxy_api_port"],
        }
        for key, other in taken.items():
            if port == other:
                out.append(("hub.tls.redirect_http_port", f"port {port} is already {key}'s"))
    if tls["hsts"] and not is_https(cfg):
        out.append(("hub.tls.hsts", "HSTS needs an https:// hub.bind_url"))
    return out


def files(cfg: dict, data_dir: Path) -> tuple[str, str] | None:
    """The certificate and key files the proxy serves with (None: plain http)."""
    tls = cfg["hub"]["tls"]
    if tls["self_signed"]:
        folder = Path(data_dir) / SELF_SIGNED_DIR
        return str(folder / SELF_SIGNED_CERT), str(folder / SELF_SIGNED_KEY)
    if tls["cert_file"]:
        return str(Path(tls["cert_file"])), str(Path(tls["key_file"]))
    return None


def proxy_command(cfg: dict) -> list[str] | None:
    """configurable-http-proxy's command with the http-to-https redirect listener, or None
    (JupyterHub's default command) without one."""
    port = cfg["hub"]["tls"]["redirect_http_port"]
    if port is None or not enabled(cfg):
        return None
    return ["configurable-http-proxy", "--redirect-port", str(port)]


def headers(cfg: dict) -> dict[str, str]:
    """Headers every hub page carries because of ``hub.tls`` (HSTS)."""
    return {"Strict-Transport-Security": HSTS_HEADER} if cfg["hub"]["tls"]["hsts"] else {}


def host_of(cfg: dict) -> str:
    return urlparse(cfg["hub"]["bind_url"]).hostname or "localhost"


# --- at start-up ---------------------------------------------------------------------------


def prepare(cfg: dict, data_dir: Path, now: datetime.datetime | None = None) -> str | None:
    """Make the self-signed certificate when asked to, then check that the certificate and
    key can be read and belong together. Returns a line to print when a self-signed
    certificate was made, else None. Raises :class:`TlsError` naming the key."""
    paths = files(cfg, data_dir)
    if paths is None:
        return None
    cert, key = paths
    made = None
    if cfg["hub"]["tls"]["self_signed"]:
        if not self_signed_current(cert, key, host_of(cfg), now):
            make_self_signed(cert, key, host_of(cfg), now)
            made = f"dlhub: made a self-signed certificate for {host_of(cfg)} in {cert}"
        cert_key = key_key = "hub.tls.self_signed"
    else:
        cert_key, key_key = "hub.tls.cert_file", "hub.tls.key_file"
    for name, path in ((cert_key, cert), (key_key, key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise TlsError(name, f"cannot read {path} ({e.strerror})") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as e:
        reason = e.reason or str(e)
        if "KEY_VALUES_MISMATCH" in reason.upper():
            raise TlsError(key_key, f"{key} is not the key of the certificate {cert}") from None
        raise TlsError(
            cert_key, f"{cert} and {key} are not a PEM certificate and its key ({reason})"
        ) from None
    return made


def _san(host: str) -> list:
    from cryptography import x509

    names: list = []
    hosts = dict.fromkeys([host, "localhost", "127.0.0.1"])
    for name in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    return names


def self_signed_current(
    cert: str, key: str, host: str, now: datetime.datetime | None = None
) -> bool:
    """Whether the self-signed certificate exists, names ``host`` and has more than
    ``RENEW_DAYS`` left."""
    from cryptography import x509

    now = now or datetime.datetime.now(datetime.UTC)
    try:
        loaded = x509.load_pem_x509_certificate(Path(cert).read_bytes())
        Path(key).stat()
    except (OSError, ValueError):
        return False
    if loaded.not_valid_after_utc - now < datetime.timedelta(days=RENEW_DAYS):
        return False
    try:
        names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(name in names for name in _san(host))


def make_self_signed(cert: str, key: str, host: str, now: datetime.datetime | None = None) -> None:
    """Write a self-signed certificate for ``host`` (and localhost, 127.0.0.1) and its key
    (mode 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now or datetime.datetime.now(datetime.UTC)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"dlhub self-signed ({host})")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(_san(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(private, hashes.SHA256())
    )
    Path(cert).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_bytes = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(key_bytes)
    Path(cert).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
