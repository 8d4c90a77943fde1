"""A real LDAP directory for tests: Debian's slapd through tools/ldap_server.py, with a
certificate of the test's own CA (tests/tlstest.py), and the ``auth.ldap`` section that
points a hub at it.

tools/ is not a package: its scripts import their siblings from their own folder, so
tools/ goes on the path (last, so that it shadows nothing installed), as
tests/k8s/conftest.py does for the cluster tool.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from hubtest import REPO, part_missing
from tlstest import TestCA


def ldap_server():
    """tools/ldap_server.py as a module."""
    tools = str(REPO / "tools")
    if tools not in sys.path:
        sys.path.append(tools)
    return importlib.import_module("ldap_server")


def start_directory(directory: Path, ca: TestCA, users: dict, groups: dict):
    """slapd serving ``users`` ({uid: password}) and ``groups`` ({cn: [uid]}), StartTLS and
    LDAPS with a certificate for 127.0.0.1 signed by ``ca``; part_missing without slapd."""
    tool = ldap_server()
    if tool.missing():
        part_missing(f"needs {', '.join(tool.missing())} (run `make system-packages`)")
    cert, key = ca.issue("slapd")
    server = tool.LdapServer(directory, tls={"cert": cert, "key": key, "ca": ca.ca_file})
    return server.start(users, groups)


def ldap_section(server, ca: TestCA, **extra) -> dict:
    """``auth.ldap`` for a hub using ``server``: StartTLS checked against ``ca``, users
    bound by DN template, groups under ou=groups, ml-team and vision allowed,
    dlhub-admins admins."""
    tool = ldap_server()
    return {
        "server_address": "127.0.0.1",
        "server_port": server.port,
        "tls": "starttls",
        "ca_file": str(ca.ca_file),
        "bind_dn_template": [f"uid={{username}},{tool.PEOPLE}"],
        "group_search_base": tool.GROUPS,
        "allowed_groups": ["ml-team", "vision"],
        "admin_groups": ["dlhub-admins"],
        **extra,
    }


def directory_fixtures(users: dict, groups: dict):
    """The module-scoped fixtures ``ca`` (a :class:`TestCA`) and ``directory`` (slapd
    serving ``users`` and ``groups``, see :func:`start_directory`, stopped at the end).
    A test module binds both: ``ca, directory = directory_fixtures(PASSWORDS, GROUPS)``."""

    @pytest.fixture(scope="module", name="ca")
    def ca_fixture(tmp_path_factory):
        return TestCA(tmp_path_factory.mktemp("ldap-ca"))

    @pytest.fixture(scope="module", name="directory")
    def directory_fixture(tmp_path_factory, ca):
        server = start_directory(tmp_path_factory.mktemp("slapd"), ca, users, groups)
        yield server
        server.stop()

    return ca_fixture, directory_fixture
