"""Start a Docker engine and make sure the images' base image exists, without a registry.

    python3 tools/docker_engine.py start   # install docker.io, debootstrap if missing; run dockerd
    python3 tools/docker_engine.py base    # debian:bookworm-slim, or build a local equivalent
    python3 tools/docker_engine.py stop    # stop the dockerd that `start` started

`start` does nothing when `docker info` already works (an engine someone else runs is used
as it is). Otherwise it starts /usr/sbin/dockerd in its own session, logging to
.docker-engine/dockerd.log with its pid in .docker-engine/dockerd.pid; `stop` stops only
that process.

`base` uses debian:bookworm-slim when it is present locally. Where it cannot be pulled, it
builds an equivalent with debootstrap from this machine's Debian mirror and imports it as
dlhub-local/debian:bookworm-slim. This machine's extra CA certificates (an egress proxy's,
from /usr/local/share/ca-certificates) go into that local base only, with PIP_CERT,
SSL_CERT_FILE and REQUESTS_CA_BUNDLE pointing at the bundle, so that pip and apt inside
builds work here; the Dockerfiles stay free of them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import host
from host import docker_works, image_exists

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".docker-engine"
LOG = STATE / "dockerd.log"
PIDFILE = STATE / "dockerd.pid"
DOCKERD = "/usr/sbin/dockerd"
START_TIMEOUT = 60.0

PUBLIC_BASE = "debian:bookworm-slim"
LOCAL_BASE = "dlhub-local/debian:bookworm-slim"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
HOST_EXTRA_CAS = Path("/usr/local/share/ca-certificates")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# the image config of debian:bookworm-slim, plus the CA bundle for the local base
BASE_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    f"ENV PIP_CERT={CA_BUNDLE}",
    f"ENV SSL_CERT_FILE={CA_BUNDLE}",
    f"ENV REQUESTS_CA_BUNDLE={CA_BUNDLE}",
    'CMD ["bash"]',
]
# apt settings of this machine that apt inside the local base needs too
HOST_APT_OPTIONS = ["Acquire::Check-Valid-Until", "Acquire::Check-Date"]
# what debian:bookworm-slim leaves out of a minbase system
SLIM_EXCLUDES = ["usr/share/doc/*", "usr/share/man/*", "usr/share/info/*"]


def say(message: str) -> None:
    print(f"==> docker engine: {message}", flush=True)


def base_image() -> str:
    """The base image the Dockerfiles should build on here: the public one, else the local."""
    return PUBLIC_BASE if image_exists(PUBLIC_BASE) else LOCAL_BASE


def apt_install(packages: list[str]) -> None:
    say(f"installing {' '.join(packages)} (apt-get)")
    try:
        host.apt_install(packages, recommends=True)
    except host.HostError as e:
        raise SystemExit(f"docker engine: {e}") from e


def ensure_packages() -> None:
    wanted = {"docker.io": DOCKERD, "debootstrap": "/usr/sbin/debootstrap"}
    missing = [pkg for pkg, path in wanted.items() if not os.path.exists(path)]
    if not shutil.which("docker") and "docker.io" not in missing:
        missing.append("docker.io")
    if missing:
        apt_install(missing)


def is_our_dockerd(pid: int) -> bool:
    return host.program(pid) == "dockerd"


def cmd_start(args) -> int:
    if docker_works():
        say("already running (docker info works)")
        return 0
    ensure_packages()
    pid = host.read_pid(PIDFILE)
    if pid and is_our_dockerd(pid):
        say(f"dockerd (pid {pid}) is running but not answering yet; waiting")
    else:
        STATE.mkdir(exist_ok=True)
        say(f"starting {DOCKERD} (log: {LOG.relative_to(REPO)})")
        with open(LOG, "ab") as log:
            proc = subprocess.Popen(
                [DOCKERD],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pid = proc.pid
        PIDFILE.write_text(f"{pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if docker_works():
            say(f"ready (dockerd pid {pid})")
            return 0
        if not is_our_dockerd(pid):
            break
        time.sleep(0.5)
    tail = LOG.read_text(errors="replace").splitlines()[-20:] if LOG.exists() else []
    print("\n".join(tail), file=sys.stderr)
    raise SystemExit(
        f"docker engine: dockerd did not answer within {START_TIMEOUT:.0f} s; "
        f"see {LOG} (last lines above)"
    )


def cmd_stop(args) -> int:
    pid = host.read_pid(PIDFILE)
    if not pid or not is_our_dockerd(pid):
        say("no dockerd started by this tool is running")
        PIDFILE.unlink(missing_ok=True)
        return 0
    say(f"stopping dockerd (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and is_our_dockerd(pid):
        time.sleep(0.5)
    if is_our_dockerd(pid):
        say(f"dockerd (pid {pid}) did not stop within 60 s; killing it")
        os.kill(pid, signal.SIGKILL)
    PIDFILE.unlink(missing_ok=True)
    say("stopped")
    return 0


def host_mirror(sources: Path = HOST_SOURCES) -> str:
    """The URI of the first deb822 stanza of `sources` that serves the plain bookworm suite."""
    try:
        text = sources.read_text()
    except OSError:
        return DEFAULT_MIRROR
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.split()
        if SUITE in fields.get("suites", []) and fields.get("uris"):
            return fields["uris"][0]
    return DEFAULT_MIRROR


def host_apt_options() -> str:
    """This machine's settings of HOST_APT_OPTIONS, as an apt.conf snippet ("" if none)."""
    lines = []
    for option in HOST_APT_OPTIONS:
        result = subprocess.run(
            ["apt-config", "dump", option], capture_output=True, text=True, check=False
        )
        for line in result.stdout.splitlines():
            if line.split(" ", 1)[0] == option:
                lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def build_local_base(tag: str) -> None:
    mirror = host_mirror()
    with tempfile.TemporaryDirectory(prefix="dlhub-base-") as tmp:
        root = Path(tmp) / "rootfs"
        say(f"building {tag} with debootstrap from {mirror} (about 30 s)")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=ca-certificates",
                SUITE,
                str(root),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # apt sources and settings as on this machine (the chroot only has `SUITE main`)
        if HOST_SOURCES.exists():
            (root / "etc/apt/sources.list").unlink(missing_ok=True)
            shutil.copy(HOST_SOURCES, root / "etc/apt/sources.list.d" / HOST_SOURCES.name)
        options = host_apt_options()
        if options:
            (root / "etc/apt/apt.conf.d/99dlhub-local-base").write_text(options)
        cas = sorted(HOST_EXTRA_CAS.glob("*.crt"))
        for ca in cas:
            shutil.copy(ca, root / "usr/local/share/ca-certificates" / ca.name)
        subprocess.run(
            ["chroot", str(root), "update-ca-certificates"], check=True, capture_output=True
        )
        say(f"added {len(cas)} CA certificate(s) of this machine to the local base")
        for pattern in SLIM_EXCLUDES:
            for path in root.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        changes = [arg for change in BASE_CHANGES for arg in ("--change", change)]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", *changes, "-", tag],
            stdin=tar.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tar.stdout.close()
        if tar.wait() != 0:
            raise SystemExit("docker engine: tar of the local base failed")


def cmd_base(args) -> int:
    if not docker_works():
        raise SystemExit(
            "docker engine: not running; start it with `python3 tools/docker_engine.py start`"
        )
    if image_exists(PUBLIC_BASE):
        say(f"base image: {PUBLIC_BASE} (present locally)")
        return 0
    if image_exists(LOCAL_BASE):
        say(f"base image: {LOCAL_BASE} (local build, cached; {PUBLIC_BASE} is not present)")
        return 0
    if not shutil.which("debootstrap"):
        apt_install(["debootstrap"])
    started = time.monotonic()
    build_local_base(LOCAL_BASE)
    say(
        f"base image: {LOCAL_BASE} (built in {time.monotonic() - started:.0f} s; "
        f"{PUBLIC_BASE} is not present)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="start dockerd unless `docker info` already works").set_defaults(
        func=cmd_start
    )
    sub.add_parser("stop", help="stop the dockerd that `start` started").set_defaults(
        func=cmd_stop
    )
    sub.add_parser("base", help="make sure the base image exists").set_defaults(func=cmd_base)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
