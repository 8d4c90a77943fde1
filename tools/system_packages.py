"""Install the Debian packages a dlhub target needs, when they are missing.

    python3 tools/system_packages.py browser postgres

Each name is a group below; a group is skipped when its check path already exists.
Prints what it does; as a non-root user it prints the apt-get command to run instead.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import host

GROUPS = {
    # headless Chromium for the end-to-end tests (Playwright drives Debian's binary)
    "browser": (["/usr/bin/chromium"], ["chromium", "fonts-dejavu-core"]),
    # a PostgreSQL server the tests start privately (initdb + pg_ctl)
    "postgres": (["/usr/lib/postgresql/*/bin/pg_ctl"], ["postgresql"]),
    # OpenLDAP's server and clients: the LDAP tests start slapd with their own config
    "ldap": (["/usr/sbin/slapd", "/usr/bin/ldapadd"], ["slapd", "ldap-utils"]),
    # certutil: the browser tests trust their own certificate authority in an NSS db
    "nss": (["/usr/bin/certutil"], ["libnss3-tools"]),
    # git and git daemon: the "Open in dlhub" tests serve a repository on loopback
    "git": (["/usr/bin/git", "/usr/lib/git-core/git-daemon"], ["git"]),
}

#: debconf answers given before installing: the package's own server is not configured
#: (and so not started); the tests run theirs.
PRESEED = {"slapd": "slapd slapd/no_configuration boolean true\n"}


def preseed(answers: str) -> None:
    """Give debconf its answers (``debconf-set-selections``) before a package installs."""
    result = subprocess.run(
        ["debconf-set-selections"], input=answers, text=True, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise host.HostError(f"debconf-set-selections failed: {result.stderr.strip()}")


def missing_packages(groups: list[str]) -> list[str]:
    packages: list[str] = []
    for name in groups:
        if name not in GROUPS:
            raise SystemExit(f"unknown package group {name!r}; known: {', '.join(GROUPS)}")
        checks, pkgs = GROUPS[name]
        if all(glob.glob(check) for check in checks):
            print(f"system packages: {name}: already installed")
        else:
            packages.extend(pkgs)
    return packages


def main(argv: list[str]) -> int:
    packages = missing_packages(argv)
    if not packages:
        return 0
    print(f"system packages: installing {' '.join(packages)} (apt-get)", flush=True)
    try:
        for package in packages:
            if package in PRESEED and os.geteuid() == 0:
                preseed(PRESEED[package])
        host.apt_install(packages)
    except host.HostError as e:
        print(f"system packages: {e}", file=sys.stderr)
        return 1
    print("system packages: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
