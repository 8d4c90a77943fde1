"""A private OpenLDAP server (Debian's slapd) in a directory of its own, for the LDAP tests
and for trying dlhub's LDAP log-in out.

    python3 tools/ldap_server.py run DIR [--port N] [--cert C --key K --ca CA]

``run`` makes the server's configuration in DIR (cn=config, an MDB database for
``dc=dlhub,dc=test``), seeds a few users and groups, prints how to reach it and serves in
the foreground until Ctrl-C. Tests use :class:`LdapServer` (start, stop, and changes to
users and groups through ``ldapmodify`` as the directory's root). slapd and ldap-utils come
from ``make system-packages``.

Users are ``inetOrgPerson`` entries under ``ou=people`` with a salted SHA-1 userPassword
(``{SSHA}``, never stored in clear); groups are ``groupOfNames`` under ``ou=groups``
(``member`` holds users' DNs). Bound users read the directory; anonymous clients can only
bind. With a certificate, slapd speaks StartTLS on the ldap:// port and TLS on an ldaps://
port.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
LDAPMODIFY = "/usr/bin/ldapmodify"
MODULES = "/usr/lib/ldap"
SCHEMAS = "/etc/ldap/schema"

SUFFIX = "dc=dlhub,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
#: a read-only account for looking users up (``lookup_dn_search_user``)
READER_DN = f"cn=reader,{SUFFIX}"


class LdapError(RuntimeError):
    """slapd or an LDAP tool failed; the message has the tail of its output."""


def missing() -> list[str]:
    """The programs this tool needs that are not installed."""
    return [p for p in (SLAPD, SLAPADD, LDAPMODIFY) if not Path(p).exists()]


def ssha(password: str) -> str:
    """A ``{SSHA}`` userPassword value for ``password`` (salted SHA-1, as slappasswd makes)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ldif(*entries: dict) -> str:
    """LDIF text of entries given as {attribute: value or [values]} (``dn`` first)."""
    blocks = []
    for entry in entries:
        lines = []
        for attribute, values in entry.items():
            for value in values if isinstance(values, list) else [values]:
                lines.append(f"{attribute}: {value}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def config_ldif(directory: Path, root_password: str, tls: dict | None) -> str:
    """slapd's cn=config: the schemas people and groups need, one MDB database."""
    global_entry = {
        "dn": "cn=config",
        "objectClass": "olcGlobal",
        "cn": "config",
        "olcPidFile": str(directory / "slapd.pid"),
        "olcArgsFile": str(directory / "slapd.args"),
        "olcLogLevel": "none",
    }
    if tls:
        global_entry.update(
            olcTLSCertificateFile=tls["cert"],
            olcTLSCertificateKeyFile=tls["key"],
            olcTLSCACertificateFile=tls["ca"],
        )
    text = _ldif(
        global_entry,
        {
            "dn": "cn=module{0},cn=config",
            "objectClass": "olcModuleList",
            "cn": "module{0}",
            "olcModulePath": MODULES,
            "olcModuleLoad": "back_mdb",
        },
        {"dn": "cn=schema,cn=config", "objectClass": "olcSchemaConfig", "cn": "schema"},
    )
    for schema in ("core", "cosine", "inetorgperson", "nis"):
        text += f"\ninclude: file://{SCHEMAS}/{schema}.ldif\n"
    text += "\n" + _ldif(
        {
            "dn": "olcDatabase={-1}frontend,cn=config",
            "objectClass": ["olcDatabaseConfig", "olcFrontendConfig"],
            "olcDatabase": "{-1}frontend",
        },
        {
            "dn": "olcDatabase={0}config,cn=config",
            "objectClass": "olcDatabaseConfig",
            "olcDatabase": "{0}config",
            "olcAccess": "{0}to * by * none",
        },
        {
            "dn": "olcDatabase={1}mdb,cn=config",
            "objectClass": ["olcDatabaseConfig", "olcMdbConfig"],
            "olcDatabase": "{1}mdb",
            "olcSuffix": SUFFIX,
            "olcRootDN": ROOT_DN,
            "olcRootPW": ssha(root_password),
            "olcDbDirectory": str(directory / "db"),
            "olcDbMaxSize": "104857600",
            "olcAccess": [
                "{0}to attrs=userPassword by self write by anonymous auth by * none",
                "{1}to * by users read by * none",
            ],
        },
    )
    return text


def base_ldif(reader_password: str) -> str:
    return _ldif(
        {"dn": SUFFIX, "objectClass": ["dcObject", "organization"], "dc": "dlhub", "o": "dlhub"},
        {"dn": PEOPLE, "objectClass": "organizationalUnit", "ou": "people"},
        {"dn": GROUPS, "objectClass": "organizationalUnit", "ou": "groups"},
        {
            "dn": READER_DN,
            "objectClass": ["organizationalRole", "simpleSecurityObject"],
            "cn": "reader",
            "userPassword": ssha(reader_password),
        },
    )


def user_entry(uid: str, password: str) -> dict:
    return {
        "dn": user_dn(uid),
        "objectClass": "inetOrgPerson",
        "uid": uid,
        "cn": uid.title(),
        "sn": uid,
        "mail": f"{uid}@dlhub.test",
        "userPassword": ssha(password),
    }


def group_entry(cn: str, members: list[str]) -> dict:
    return {
        "dn": group_dn(cn),
        "objectClass": "groupOfNames",
        "cn": cn,
        "member": [user_dn(m) for m in members],
    }


class LdapServer:
    """slapd serving ``dc=dlhub,dc=test`` from ``directory`` on 127.0.0.1.

    ``tls``: {"cert", "key", "ca"} files: StartTLS on ``port`` and LDAPS on
    ``ldaps_port``. ``reader_password``: the password of :data:`READER_DN`.
    """

    def __init__(self, directory: Path, *, tls: dict | None = None, port: int | None = None):
        self.directory = Path(directory).resolve()
        self.tls = {k: str(Path(v).resolve()) for k, v in tls.items()} if tls else None
        self.port = port or _free_port()
        self.ldaps_port = _free_port() if tls else None
        self.root_password = secrets.token_urlsafe(16)
        self.reader_password = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def _run(self, command: list[str], input_text: str | None = None) -> str:
        result = subprocess.run(
            command, input=input_text, capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise LdapError(f"{Path(command[0]).name} failed ({result.returncode}):\n{tail}")
        return result.stdout

    def start(self, users: dict[str, str] | None = None, groups: dict | None = None, timeout=20):
        """Make the configuration and database, seed ``users`` ({uid: password}) and
        ``groups`` ({cn: [uid, ...]}, at least one member each), start slapd and wait
        until it answers."""
        if missing():
            raise LdapError(f"missing {', '.join(missing())} (run `make system-packages`)")
        config, db = self.directory / "slapd.d", self.directory / "db"
        for path in (config, db):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True, mode=0o700)
        ldif = self.directory / "config.ldif"
        ldif.write_text(config_ldif(self.directory, self.root_password, self.tls))
        self._run([SLAPADD, "-n", "0", "-F", str(config), "-l", str(ldif)])
        entries = [user_entry(u, p) for u, p in (users or {}).items()]
        entries += [group_entry(g, m) for g, m in (groups or {}).items()]
        data = self.directory / "data.ldif"
        data.write_text(base_ldif(self.reader_password) + "\n" + _ldif(*entries) if entries
                        else base_ldif(self.reader_password))  # fmt: skip
        data.chmod(0o600)
        self._run([SLAPADD, "-F", str(config), "-b", SUFFIX, "-l", str(data)])
        urls = [f"ldap://127.0.0.1:{self.port}/"]
        if self.ldaps_port:
            urls.append(f"ldaps://127.0.0.1:{self.ldaps_port}/")
        log = open(self.directory / "slapd.log", "ab")
        # -d: stay in the foreground (its pid is ours to stop); "0": no debug output
        self.proc = subprocess.Popen(
            [SLAPD, "-F", str(config), "-h", " ".join(urls), "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LdapError(f"slapd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise LdapError(f"slapd did not answer within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        try:
            return (self.directory / "slapd.log").read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    # --- changes, as the directory's root ---------------------------------------------------

    def modify(self, ldif: str) -> None:
        """Apply an LDIF change set with ``ldapmodify`` bound as the root (the password from a
        file of mode 0600, never on a command line)."""
        secret = self.directory / "root.secret"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.root_password)
        self._run(
            [LDAPMODIFY, "-x", "-H", self.url, "-D", ROOT_DN, "-y", str(secret)], input_text=ldif
        )

    def add_user(self, uid: str, password: str) -> None:
        self.modify("changetype: add\n".join(_split_dn(_ldif(user_entry(uid, password)))))

    def set_password(self, uid: str, password: str) -> None:
        self.modify(
            f"dn: {user_dn(uid)}\nchangetype: modify\nreplace: userPassword\n"
            f"userPassword: {ssha(password)}\n"
        )

    def delete_user(self, uid: str) -> None:
        self.modify(f"dn: {user_dn(uid)}\nchangetype: delete\n")

    def add_group(self, cn: str, members: list[str]) -> None:
        self.modify("changetype: add\n".join(_split_dn(_ldif(group_entry(cn, members)))))

    def add_member(self, cn: str, uid: str) -> None:
        self.modify(
            f"dn: {group_dn(cn)}\nchangetype: modify\nadd: member\nmember: {user_dn(uid)}\n"
        )

    def remove_member(self, cn: str, uid: str) -> None:
        self.modify(
            f"dn: {group_dn(cn)}\nchangetype: modify\ndelete: member\nmember: {user_dn(uid)}\n"
        )


def _split_dn(ldif: str) -> list[str]:
    """An entry's LDIF cut after its dn line, so ``changetype: add`` goes between."""
    first, rest = ldif.split("\n", 1)
    return [first + "\n", rest]


DEMO_USERS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password"}
DEMO_GROUPS = {"ml-team": ["alice", "bob"], "dlhub-admins": ["carol"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a seeded slapd in the foreground (Ctrl-C stops it)")
    run.add_argument("directory", help="where its configuration and database go (made anew)")
    run.add_argument("--port", type=int, help="the ldap:// port (default: a free one)")
    run.add_argument("--cert", help="server certificate (PEM): StartTLS and an ldaps:// port")
    run.add_argument("--key", help="the certificate's key (PEM)")
    run.add_argument("--ca", help="the CA file clients trust")
    args = parser.parse_args(argv)
    tls = {"cert": args.cert, "key": args.key, "ca": args.ca} if args.cert else None
    server = LdapServer(Path(args.directory), tls=tls, port=args.port)
    try:
        server.start(DEMO_USERS, DEMO_GROUPS)
    except LdapError as e:
        print(f"ldap_server: {e}", file=sys.stderr)
        return 1
    print(f"slapd serves {SUFFIX} at {server.url}", end="")
    print(f" and ldaps://127.0.0.1:{server.ldaps_port}" if server.ldaps_port else "")
    print(f"users (password <name>-password): {', '.join(DEMO_USERS)}")
    listed = [f"{group} ({' '.join(members)})" for group, members in DEMO_GROUPS.items()]
    print(f"groups: {', '.join(listed)}")
    print(f"lookup account: {READER_DN} password {server.reader_password}")
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
