"""A certificate authority of the test's own, for HTTPS and LDAPS against real servers.

:class:`TestCA` makes a CA key and certificate in a directory and issues server
certificates signed by it (names in subjectAltName). Clients trust the CA file
(``requests``' ``verify=``, ldap3's ``ca_certs_file``); Chromium trusts it through an NSS
database in a home of its own (:meth:`TestCA.chromium_home`, made with ``certutil``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERTUTIL = shutil.which("certutil") or "/usr/bin/certutil"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class TestCA:
    """A CA in ``directory``: ``ca_file`` (its certificate, PEM) and its key."""

    __test__ = False  # not a test class

    def __init__(self, directory: Path, name: str = "dlhub test CA"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = self.directory / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, name: str, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    ) -> tuple[Path, Path]:
        """A server certificate for ``hosts`` signed by this CA: (certificate, key) files."""
        key = ec.generate_private_key(ec.SECP256R1())
        names = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_file = self.directory / f"{name}.crt"
        key_file = self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_file, key)
        return cert_file, key_file

    def https_hub(self, hub_factory, config: dict, name: str, **tls):
        """A started hub of ``hub_factory`` (tests/conftest.py) named ``name``, serving
        https with a certificate of this CA, its sessions trusting this CA; ``tls``: more
        keys of ``hub.tls`` (``redirect_http_port``, ``hsts``, ...)."""
        cert, key = self.issue(f"hub-{name}")
        tls = {"cert_file": str(cert), "key_file": str(key), **tls}
        config = {**config, "hub": {**config.get("hub", {}), "tls": tls}}
        hub = hub_factory(config, name=name, start=False)
        hub.verify = str(self.ca_file)
        return hub.start()

    def chromium_home(self, home: Path) -> Path:
        """A HOME whose NSS database (``.pki/nssdb``) trusts this CA for web sites, as
        Chromium on Linux reads it; give it to the browser as ``env={"HOME": ...}``."""
        if not Path(CERTUTIL).exists():
            from hubtest import part_missing

            part_missing("needs certutil (libnss3-tools; run `make system-packages`)")
        nssdb = Path(home) / ".pki" / "nssdb"
        nssdb.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [CERTUTIL, "-N", "-d", f"sql:{nssdb}", "--empty-password"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [CERTUTIL, "-A", "-d", f"sql:{nssdb}", "-n", "dlhub-test-ca", "-t", "C,,",
             "-i", str(self.ca_file)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return Path(home)
