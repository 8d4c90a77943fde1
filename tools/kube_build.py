"""Kubernetes 1.20.2 built from Debian's source package, cached in ~/.cache/dlhub.

Part of tools/kube_cluster.py (its module docstring says what `build` does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import host
from docker_engine import host_mirror  # the same mirror the base image uses
from host import docker_works, image_exists
from kube_common import ClusterError, host_errors_as_cluster_errors, locked, quiet, run, say

REPO = Path(__file__).resolve().parents[1]

VERSION = "1.20.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlhub"
CACHE = CACHE / f"kubernetes-{VERSION}"
BIN = CACHE / "bin"
BUILD_DIR = CACHE / "build"
BINARIES = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
]
PAUSE_IMAGE = "local/pause:3.2"
ETCD = "/usr/bin/etcd"

# Debian packages: the build needs Go, rsync, jq and dpkg-dev (apt-get source); gcc and
# libc6-dev compile the static pause binary; etcd-server, conntrack, iptables and openssl run
# the cluster
PACKAGES = [
    "golang-go",
    "rsync",
    "jq",
    "dpkg-dev",
    "etcd-server",
    "conntrack",
    "iptables",
    "libc6-dev",
    "gcc",
    "openssl",
]
SUITE = "bookworm"
SOURCE_ENTRY = Path("/etc/apt/sources.list.d/dlhub-kubernetes-src.sources")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# (file, text, replacement): the one source patch, see the module docstring
OOM_PATCHES = [
    (
        "pkg/kubelet/dockershim/docker_sandbox.go",
        "defaultSandboxOOMAdj int = -998",
        "defaultSandboxOOMAdj int = 0",
    ),
    (
        "pkg/kubelet/qos/policy.go",
        "guaranteedOOMScoreAdj int = -997",
        "guaranteedOOMScoreAdj int = 0",
    ),
]


def missing_packages(packages: list[str]) -> list[str]:
    missing = []
    for package in packages:
        result = run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            check=False,
            capture_output=True,
            text=True,
        )
        if result.stdout.strip() != "install ok installed":
            missing.append(package)
    return missing


def apt_update() -> None:
    say("apt-get update")
    with host_errors_as_cluster_errors():
        host.apt_update()


def apt_install(packages: list[str]) -> None:
    say(f"installing {' '.join(packages)} (apt-get)")
    with host_errors_as_cluster_errors():
        host.apt_install(packages)


def ensure_source_entry() -> None:
    """A deb-src entry for bookworm (in its own file), and apt's lists knowing the source."""
    entry = (
        "# added by dlhub's tools/kube_cluster.py: the source package `kubernetes`\n"
        "Types: deb-src\n"
        f"URIs: {host_mirror()}\n"
        f"Suites: {SUITE}\n"
        "Components: main\n"
        f"Signed-By: {KEYRING}\n"
    )
    if not SOURCE_ENTRY.exists() or SOURCE_ENTRY.read_text() != entry:
        say(f"adding a deb-src entry for {SUITE}: {SOURCE_ENTRY}")
        SOURCE_ENTRY.write_text(entry)
        apt_update()
    elif (
        run(["apt-cache", "showsrc", "kubernetes"], check=False, capture_output=True).stdout == b""
    ):
        apt_update()


def binaries_cached() -> bool:
    return all((BIN / name).is_file() for name in [*BINARIES, "pause"])


def patch_oom_scores(tree: Path) -> None:
    for relative, text, replacement in OOM_PATCHES:
        path = tree / relative
        source = path.read_text()
        if replacement in source:
            continue
        if source.count(text) != 1:
            raise ClusterError(
                f"cannot patch {relative}: `{text}` not found once; the source package "
                f"differs from Kubernetes {VERSION}"
            )
        path.write_text(source.replace(text, replacement))
        say(f"patched {relative}: {replacement}")


def build_binaries() -> None:
    if BUILD_DIR.exists():
        shutil.rmtree(BUILD_DIR)
    BUILD_DIR.mkdir(parents=True)
    say("fetching Debian's source package kubernetes (apt-get source)")
    quiet(["apt-get", "source", "-q", "kubernetes"], cwd=BUILD_DIR)
    trees = [p for p in BUILD_DIR.iterdir() if p.is_dir() and p.name.startswith("kubernetes-")]
    # bookworm's version is 1.20.5+really1.20.2: the 1.20.2 source
    if len(trees) != 1 or not trees[0].name.endswith(VERSION):
        raise ClusterError(
            f"apt-get source kubernetes gave {[p.name for p in trees]}, not {VERSION}"
        )
    tree = trees[0]
    patch_oom_scores(tree)
    # GOPATH mode: the tree as k8s.io/kubernetes in its own GOPATH (modules do not build)
    gopath = BUILD_DIR / ".go"
    link = gopath / "src" / "k8s.io" / "kubernetes"
    link.parent.mkdir(parents=True)
    link.symlink_to(tree)
    env = dict(
        os.environ,
        GOPATH=str(gopath),
        GO111MODULE="off",
        GOFLAGS="",
        CGO_ENABLED="0",
        GOCACHE=str(BUILD_DIR / ".gocache"),
    )
    what = " ".join(f"cmd/{name}" for name in BINARIES)
    say(f"building Kubernetes {VERSION} from Debian's source (about 4 minutes)")
    started = time.monotonic()
    log = CACHE / "build.log"
    with open(log, "wb") as out:
        result = run(
            ["make", f"WHAT={what}"], check=False, cwd=link, env=env, stdout=out, stderr=out
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ClusterError(f"building Kubernetes failed; see {log}:\n{tail}")
    say(f"built in {time.monotonic() - started:.0f} s")
    built = tree / "_output" / "bin"
    BIN.mkdir(parents=True, exist_ok=True)
    for name in BINARIES:
        shutil.copy2(built / name, BIN / f".{name}.new")
        os.replace(BIN / f".{name}.new", BIN / name)
    pause_source = tree / "build" / "pause" / "linux" / "pause.c"
    quiet(["gcc", "-Os", "-static", "-DVERSION=v3.2", "-o", BIN / ".pause.new", pause_source])
    quiet(["strip", BIN / ".pause.new"])
    os.replace(BIN / ".pause.new", BIN / "pause")
    shutil.rmtree(BUILD_DIR)
    say(f"binaries cached in {BIN} (build tree removed)")


def ensure_docker() -> None:
    if docker_works():
        return
    say("the Docker engine does not answer; starting it (tools/docker_engine.py start)")
    result = run([sys.executable, REPO / "tools" / "docker_engine.py", "start"], check=False)
    if result.returncode != 0 or not docker_works():
        raise ClusterError(
            "no Docker engine: `python3 tools/docker_engine.py start` failed (see above)"
        )


def ensure_pause_image() -> None:
    if image_exists(PAUSE_IMAGE):
        return
    say(f"importing {PAUSE_IMAGE} (the static pause binary, FROM scratch)")
    with tempfile.TemporaryDirectory(prefix="dlhub-pause-") as tmp:
        shutil.copy2(BIN / "pause", Path(tmp) / "pause")
        tar = subprocess.Popen(["tar", "-C", tmp, "-c", "pause"], stdout=subprocess.PIPE)
        result = run(
            ["docker", "import", "--change", 'ENTRYPOINT ["/pause"]', "-", PAUSE_IMAGE],
            check=False,
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.stdout.close()
        if tar.wait() != 0 or result.returncode != 0:
            raise ClusterError(f"docker import of {PAUSE_IMAGE} failed: {result.stderr}")


def build() -> None:
    """Install what the cluster needs and build (or reuse) the binaries and the pause image."""
    if os.geteuid() != 0:
        raise ClusterError("the cluster runs as root (kubelet, iptables); run this as root")
    missing = missing_packages(PACKAGES)
    if missing:
        apt_install(missing)
    with locked(CACHE.parent / f"kubernetes-{VERSION}.lock"):
        if binaries_cached():
            say(f"Kubernetes {VERSION} binaries: cached in {BIN}")
        else:
            ensure_source_entry()
            build_binaries()
    ensure_docker()
    ensure_pause_image()
