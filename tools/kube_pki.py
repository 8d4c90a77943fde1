"""The cluster's CA, component certificates and kubeconfigs, written with openssl.

Part of tools/kube_cluster.py (its module docstring says what the cluster is).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

from kube_common import CLUSTER_DOMAIN, NODE_IP, NODE_NAME, SERVICE_IP, quiet, say

# name: (subject, extended key usage, subject alternative names)
CERTIFICATES = {
    "kube-apiserver": (
        "/CN=kube-apiserver",
        "serverAuth",
        [
            "IP:127.0.0.1",
            f"IP:{NODE_IP}",
            f"IP:{SERVICE_IP}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            f"DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}",
        ],
    ),
    # the apiserver's client certificate for the kubelet (logs, exec, port-forward)
    "kube-apiserver-kubelet-client": (
        "/O=system:masters/CN=kube-apiserver-kubelet-client",
        "clientAuth",
        [],
    ),
    "admin": ("/O=system:masters/CN=admin", "clientAuth", []),
    "kube-controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", []),
    "kube-scheduler": ("/CN=system:kube-scheduler", "clientAuth", []),
    "kube-proxy": ("/CN=system:kube-proxy", "clientAuth", []),
    "kubelet": (f"/O=system:nodes/CN=system:node:{NODE_NAME}", "clientAuth", []),
}
CERT_DAYS = "3650"


def openssl(*args) -> None:
    quiet(["openssl", *args])


def ec_key(path: Path) -> None:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    path.chmod(0o600)


def write_pki(pki: Path) -> None:
    """The cluster's CA, one certificate per component and the service-account key pair."""
    if (pki / "complete").exists():
        return
    if pki.exists():
        shutil.rmtree(pki)
    pki.mkdir(parents=True)
    say("writing a CA, certificates and the service-account key (openssl)")
    (pki / "openssl.cnf").write_text(
        "[req]\ndistinguished_name = dn\n[dn]\n"
        "[ca]\nbasicConstraints = critical, CA:TRUE\n"
        "keyUsage = critical, keyCertSign, cRLSign, digitalSignature\n"
        "subjectKeyIdentifier = hash\n"
    )
    ec_key(pki / "ca.key")
    openssl(
        "req", "-x509", "-new", "-key", pki / "ca.key", "-subj", "/CN=dlhub-kubernetes-ca",
        "-days", CERT_DAYS, "-config", pki / "openssl.cnf", "-extensions", "ca",
        "-out", pki / "ca.crt",
    )  # fmt: skip
    for name, (subject, usage, sans) in CERTIFICATES.items():
        ec_key(pki / f"{name}.key")
        extensions = [
            "basicConstraints = critical, CA:FALSE",
            "keyUsage = critical, digitalSignature, keyEncipherment",
            f"extendedKeyUsage = {usage}",
            "authorityKeyIdentifier = keyid",
        ]
        if sans:
            extensions.append(f"subjectAltName = {', '.join(sans)}")
        ext = pki / f"{name}.ext"
        ext.write_text("".join(f"{line}\n" for line in extensions))
        openssl(
            "req", "-new", "-key", pki / f"{name}.key", "-subj", subject,
            "-config", pki / "openssl.cnf", "-out", pki / f"{name}.csr",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", pki / f"{name}.csr", "-CA", pki / "ca.crt",
            "-CAkey", pki / "ca.key", "-set_serial", f"0x{os.urandom(12).hex()}",
            "-days", CERT_DAYS, "-extfile", ext, "-out", pki / f"{name}.crt",
        )  # fmt: skip
        (pki / f"{name}.csr").unlink()
        ext.unlink()
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", pki / "service-account.key")  # fmt: skip
    (pki / "service-account.key").chmod(0o600)
    openssl("pkey", "-in", pki / "service-account.key", "-pubout",
            "-out", pki / "service-account.pub")  # fmt: skip
    (pki / "complete").write_text("")


def kubeconfig(pki: Path, user: str, server: str) -> str:
    """A kubeconfig (JSON, which kubectl and the clients read as YAML) with embedded data."""

    def data(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "dlhub",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": data(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": data(pki / f"{user}.crt"),
                    "client-key-data": data(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "dlhub", "context": {"cluster": "dlhub", "user": user}}],
        "current-context": "dlhub",
    }
    return json.dumps(config, indent=2) + "\n"
