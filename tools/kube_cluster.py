"""Build, start and stop a real single-node Kubernetes cluster on this machine, without a registry.

    python3 tools/kube_cluster.py build       # Kubernetes 1.20.2 from Debian's source (cached)
    python3 tools/kube_cluster.py start       # etcd, control plane, kubelet, kube-proxy (node1)
    python3 tools/kube_cluster.py stop        # stop what `start` started and clean up after it
    python3 tools/kube_cluster.py status      # whether it runs
    python3 tools/kube_cluster.py kubeconfig  # the admin kubeconfig's path

`build` installs the Debian packages it needs, adds a deb-src entry for bookworm, fetches the
source package `kubernetes` (1.20.2), patches the two negative OOM score adjustments to 0 (the
processes on these machines lack CAP_SYS_RESOURCE, so runc cannot set them), builds
kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl and
keeps them in ~/.cache/dlhub/kubernetes-1.20.2/bin (outside the repository, so that reruns and
fresh clones on the same machine skip the four-minute build); the build tree is removed
afterwards. It also compiles the pause container from the same source and imports it as
local/pause:3.2.

`start` builds when needed, starts the Docker engine with tools/docker_engine.py when
`docker info` fails, writes a CA and certificates with openssl and runs etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, a kubelet (dockershim on the local Docker engine,
node `node1`, pods on the docker0 bridge) and kube-proxy (iptables mode), each in its own
session with its pid and log under .kube-cluster/. The apiserver listens on all addresses and
advertises 172.17.0.1, so pods reach it through the `kubernetes` Service. It waits for the
apiserver and the node, then adds a default StorageClass (host-path provisioner). The admin
kubeconfig is .kube-cluster/admin.kubeconfig. A cluster that already runs is left as it is.

`stop` stops only the processes `start` started (by their pids, in reverse order), removes the
containers the kubelet created (`k8s_*`), unmounts the kubelet's mounts, removes the KUBE-*
iptables chains and the kubelet's cgroups, and deletes the cluster's data (etcd, kubelet
directory); certificates and logs are kept. The Docker engine keeps running.

The module is also the tests' API: :class:`Cluster`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docker_engine import host_mirror  # noqa: E402  (the same mirror the base image uses)

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".kube-cluster"

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

NODE_NAME = "node1"
NODE_IP = "172.17.0.1"  # the docker0 bridge: where pods reach the host
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service
POD_CIDR = "172.17.0.0/16"  # pods get docker-bridge addresses (no network plugin)
APISERVER_PORT = 6443  # used when free, else any free port
CLUSTER_DOMAIN = "cluster.local"
STORAGE_CLASS = "standard"

# the processes of a cluster, in start order (stopped in reverse)
COMPONENTS = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
]
APISERVER_TIMEOUT = 90.0
NODE_TIMEOUT = 180.0
STOP_TIMEOUT = 20.0


class ClusterError(RuntimeError):
    """The cluster could not be built or started; the message says what to do."""


def say(message: str) -> None:
    print(f"==> kubernetes: {message}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([str(c) for c in cmd], **kw)


def quiet(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Run `cmd` capturing its output; on failure raise ClusterError with the output's tail."""
    result = run(cmd, check=False, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ClusterError(f"`{shlex.join(map(str, cmd))}` failed ({result.returncode}):\n{tail}")
    return result


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on `path` (so two builds or starts do not run at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- build -----------------------------------------------------------------------------------


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


def apt_env() -> dict:
    return dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def apt_update() -> None:
    say("apt-get update")
    quiet(["apt-get", "update", "-q"], env=apt_env())


def apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise ClusterError(
            f"{', '.join(packages)} missing; run as root or install them: "
            f"apt-get install {' '.join(packages)}"
        )
    say(f"installing {' '.join(packages)} (apt-get)")
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    try:
        quiet(command, env=apt_env())
    except ClusterError:
        apt_update()
        quiet(command, env=apt_env())


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


def docker_works() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        result = run(["docker", "info"], check=False, capture_output=True, timeout=15)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def ensure_docker() -> None:
    if docker_works():
        return
    say("the Docker engine does not answer; starting it (tools/docker_engine.py start)")
    result = run([sys.executable, REPO / "tools" / "docker_engine.py", "start"], check=False)
    if result.returncode != 0 or not docker_works():
        raise ClusterError(
            "no Docker engine: `python3 tools/docker_engine.py start` failed (see above)"
        )


def image_exists(name: str) -> bool:
    return (
        run(["docker", "image", "inspect", name], check=False, capture_output=True).returncode == 0
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


# --- certificates and kubeconfigs ------------------------------------------------------------

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


# --- processes -------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def program(pid: int) -> str | None:
    """The program name (argv[0]'s basename) of a live process, None if gone or a zombie.

    Right after an exec the kernel can show an empty command line for a moment; the
    executable's path then names the program."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        if not argv0:
            argv0 = os.readlink(f"/proc/{pid}/exe").encode()
    except OSError:
        return None
    return os.path.basename(argv0.decode(errors="replace")) or None


def processes_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and program(int(entry.name)) == name:
            pids.append(int(entry.name))
    return pids


def mounts_under(root: Path) -> list[str]:
    """Mount points below `root` (deepest first)."""
    prefix = str(root) + "/"
    points = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        point = line.split()[4]
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
        if point.startswith(prefix) or point == str(root):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def jump_target(tokens: list[str]) -> str | None:
    for flag, value in zip(tokens, tokens[1:], strict=False):
        if flag in ("-j", "--jump", "-g", "--goto"):
            return value
    return None


def remove_kube_chains() -> int:
    """Remove the KUBE-* chains (and the jumps to them) of the kubelet and kube-proxy."""
    removed = 0
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool) or not shutil.which(f"{tool}-save"):
            continue
        for table in ("nat", "filter", "mangle"):
            dump = run([f"{tool}-save", "-t", table], check=False, capture_output=True, text=True)
            if dump.returncode != 0:
                continue
            chains = []
            for line in dump.stdout.splitlines():
                if line.startswith(":KUBE-"):
                    chains.append(line[1:].split()[0])
                elif line.startswith("-A ") and not line.split()[1].startswith("KUBE-"):
                    tokens = shlex.split(line)
                    if (jump_target(tokens) or "").startswith("KUBE-"):
                        run([tool, "-w", "-t", table, "-D", *tokens[1:]], check=False)
            for chain in chains:
                run([tool, "-w", "-t", table, "-F", chain], check=False, capture_output=True)
            for chain in chains:
                result = run(
                    [tool, "-w", "-t", table, "-X", chain], check=False, capture_output=True
                )
                removed += result.returncode == 0
    return removed


def remove_kubepods_cgroups() -> tuple[int, int]:
    """rmdir the kubelet's cgroups (`kubepods` in each hierarchy); (removed, left) counts."""
    removed = left = 0
    roots = [p / "kubepods" for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir()]
    roots.append(Path("/sys/fs/cgroup/kubepods"))
    for root in roots:
        if not root.is_dir():
            continue
        for current, _dirs, _files in sorted(os.walk(root), key=lambda w: -len(w[0])):
            try:
                os.rmdir(current)
                removed += 1
            except OSError:
                left += 1
    return removed, left


# sysctls the kubelet and kube-proxy set; `start` saves them and `stop` puts them back
SYSCTLS = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
]


def read_sysctls() -> dict[str, str]:
    values = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            values[key] = (Path("/proc/sys") / key).read_text().strip()
    return values


def write_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        path = Path("/proc/sys") / key
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value + "\n")


# --- the cluster -----------------------------------------------------------------------------


class Cluster:
    """The single-node cluster whose state lives in `state` (default: REPO/.kube-cluster).

    `start()` builds when needed and starts everything (True if this call started it, False
    when it already ran); `stop()` stops it and cleans up; `kubectl(*args)` runs kubectl as
    the cluster admin. `apiserver_url` is for the host, `apiserver_url_for_pods` for
    containers (the docker0 address `node_ip`).
    """

    node_name = NODE_NAME
    node_ip = NODE_IP
    storage_class = STORAGE_CLASS
    pause_image = PAUSE_IMAGE
    service_cidr = SERVICE_CIDR

    def __init__(self, state: Path = STATE):
        self.state = Path(state)
        self.pki = self.state / "pki"
        self.logs = self.state / "logs"
        self.pids = self.state / "pids"
        self.kubeconfig = self.state / "admin.kubeconfig"
        self.settings_file = self.state / "cluster.json"
        self.kubelet_dir = self.state / "kubelet"

    # --- what runs ---

    @property
    def settings(self) -> dict:
        """Ports and addresses of the running cluster (written by `start`)."""
        try:
            return json.loads(self.settings_file.read_text())
        except (OSError, ValueError) as e:
            raise ClusterError("the cluster is not running; start it: make cluster") from e

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.settings['apiserver_port']}"

    @property
    def apiserver_url_for_pods(self) -> str:
        return f"https://{NODE_IP}:{self.settings['apiserver_port']}"

    def pid(self, component: str) -> int | None:
        try:
            pid = int((self.pids / f"{component}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if program(pid) == component else None

    def running(self) -> list[str]:
        """The components whose processes (started by `start`) are alive."""
        return [name for name in COMPONENTS if self.pid(name)]

    def apiserver_ready(self) -> bool:
        try:
            port = self.settings["apiserver_port"]
            context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
            context.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
            url = f"https://127.0.0.1:{port}/readyz"
            # straight to the apiserver, whatever proxy the environment names
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
            )
            with opener.open(url, timeout=5) as response:
                return response.status == 200
        except (ClusterError, OSError, ssl.SSLError, urllib.error.URLError):
            return False

    def is_running(self) -> bool:
        return self.running() == COMPONENTS and self.apiserver_ready()

    def log(self, component: str, lines: int = 40) -> str:
        try:
            text = (self.logs / f"{component}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # --- kubectl ---

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """Run kubectl as the cluster admin; output as text; ClusterError when it fails."""
        cmd = [str(BIN / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ClusterError(
                f"kubectl {shlex.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def apply(self, *manifests: dict, namespace: str | None = None) -> None:
        """`kubectl apply` the given objects (dicts)."""
        items = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
        ns = ["--namespace", namespace] if namespace else []
        self.kubectl("apply", *ns, "-f", "-", input=json.dumps(items))

    def get(self, kind: str, name: str = "", namespace: str | None = None) -> dict:
        ns = ["--namespace", namespace] if namespace else []
        out = self.kubectl("get", kind, *([name] if name else []), *ns, "-o", "json").stdout
        return json.loads(out)

    def create_namespace(self, name: str, timeout: float = 60) -> None:
        """Create a namespace and wait for its `default` ServiceAccount (pods need it)."""
        self.kubectl("create", "namespace", name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self.kubectl(
                    "get", "serviceaccount", "default", "-n", name, check=False
                ).returncode
                == 0
            ):
                return
            time.sleep(0.2)
        raise ClusterError(f"namespace {name} got no default ServiceAccount in {timeout:.0f} s")

    def namespace_containers(self, name: str) -> list[str]:
        """Ids of the running Docker containers of the pods in namespace `name`."""
        result = run(
            ["docker", "ps", "-q", "--filter", f"label=io.kubernetes.pod.namespace={name}"],
            check=False,
            capture_output=True,
            text=True,
        )
        return result.stdout.split()

    def delete_namespace(self, name: str, timeout: float = 60) -> None:
        """Delete a namespace; return once its pods' containers are stopped.

        The namespace object itself goes a little later (the namespace controller and the
        kubelet confirm the pods' deletion on their own schedules, about half a minute).
        """
        self.kubectl("delete", "namespace", name, "--wait=false", check=False)
        deadline = time.monotonic() + timeout
        while self.namespace_containers(name):
            if time.monotonic() > deadline:
                raise ClusterError(f"containers of namespace {name} still run after {timeout} s")
            time.sleep(0.25)

    def node(self) -> dict:
        return self.get("node", NODE_NAME)

    def node_ready(self) -> bool:
        result = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # --- start ---

    def start(self) -> bool:
        """Build when needed and start the cluster; True if this call started it."""
        build()
        with locked(self.state / "lock"):
            running = self.running()
            if running == COMPONENTS and self.apiserver_ready():
                say(f"already running (node {NODE_NAME}; kubeconfig {self.kubeconfig})")
                return False
            if running:
                say(f"partly running ({', '.join(running)}); stopping it first")
                self._stop()
            others = processes_named("kubelet")
            if others:
                raise ClusterError(
                    f"another kubelet runs on this machine (pid {others[0]}), not started by "
                    f"{self.state}; stop it first"
                )
            try:
                self._start()
            except BaseException:
                say("starting failed; stopping what was started")
                self._stop()
                raise
            return True

    def _start(self) -> None:
        started = time.monotonic()
        if not port_free(0, NODE_IP):
            raise ClusterError(
                f"{NODE_IP} is not an address of this machine: the cluster needs the Docker "
                "engine's default bridge docker0 at 172.17.0.1/16"
            )
        self._cleanup()  # leftovers of a cluster that was not stopped
        for path in (self.logs, self.pids):
            path.mkdir(parents=True, exist_ok=True)
        write_pki(self.pki)
        sysctls = self.state / "sysctls.json"
        if not sysctls.exists():
            sysctls.write_text(json.dumps(read_sysctls(), indent=2) + "\n")
        port = APISERVER_PORT if port_free(APISERVER_PORT) else free_port("0.0.0.0")
        settings = {
            "apiserver_port": port,
            "etcd_port": free_port(),
            "etcd_peer_port": free_port(),
            "kubelet_port": free_port("0.0.0.0"),
            "kubelet_healthz_port": free_port(),
            "proxy_healthz_port": free_port(),
            "proxy_metrics_port": free_port(),
        }
        self.settings_file.write_text(json.dumps(settings, indent=2) + "\n")
        local = f"https://127.0.0.1:{port}"
        for user in (
            "admin",
            "kube-controller-manager",
            "kube-scheduler",
            "kube-proxy",
            "kubelet",
        ):
            name = "admin.kubeconfig" if user == "admin" else f"{user}.kubeconfig"
            (self.state / name).write_text(kubeconfig(self.pki, user, local))
            (self.state / name).chmod(0o600)
        for log in self.logs.glob("*.log"):
            log.unlink()

        self._spawn("etcd", self._etcd_args(settings))
        self._spawn("kube-apiserver", self._apiserver_args(settings))
        self._wait(
            self.apiserver_ready, APISERVER_TIMEOUT, "the apiserver", ["etcd", "kube-apiserver"]
        )
        apiserver_at = time.monotonic()
        say(f"apiserver ready on {local} and {NODE_IP}:{port} ({apiserver_at - started:.1f} s)")
        self._spawn("kube-controller-manager", self._controller_manager_args())
        self._spawn("kube-scheduler", self._scheduler_args())
        self._spawn("kubelet", self._kubelet_args(settings))
        self._spawn("kube-proxy", self._proxy_args(settings))
        self._wait(self.node_ready, NODE_TIMEOUT, f"node {NODE_NAME} to be Ready", COMPONENTS)
        ready_at = time.monotonic()
        say(f"node {NODE_NAME} Ready ({ready_at - apiserver_at:.1f} s after the apiserver)")
        self.apply(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/host-path",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
            }
        )
        say(
            f"running: started in {time.monotonic() - started:.1f} s; kubeconfig {self.kubeconfig}"
        )

    def _spawn(self, name: str, args: list[str]) -> None:
        binary = ETCD if name == "etcd" else str(BIN / name)
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [binary, *map(str, args)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.pids / f"{name}.pid").write_text(f"{proc.pid}\n")

    def _wait(self, predicate, timeout: float, what: str, components: list[str]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            dead = [name for name in components if not self.pid(name)]
            if dead:
                raise ClusterError(
                    f"{dead[0]} exited while waiting for {what}; its log "
                    f"({self.logs / (dead[0] + '.log')}) ends:\n{self.log(dead[0])}"
                )
            time.sleep(0.25)
        raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}; see {self.logs}")

    def _etcd_args(self, s: dict) -> list[str]:
        client = f"http://127.0.0.1:{s['etcd_port']}"
        peer = f"http://127.0.0.1:{s['etcd_peer_port']}"
        return [
            "--name", NODE_NAME,
            "--data-dir", self.state / "etcd",
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{NODE_NAME}={peer}",
            "--initial-cluster-state", "new",
        ]  # fmt: skip

    def _apiserver_args(self, s: dict) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{s['etcd_port']}",
            "--bind-address=0.0.0.0",
            f"--secure-port={s['apiserver_port']}",
            f"--advertise-address={NODE_IP}",
            "--insecure-port=0",
            f"--tls-cert-file={pki / 'kube-apiserver.crt'}",
            f"--tls-private-key-file={pki / 'kube-apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--disable-admission-plugins=TaintNodesByCondition",
            "--allow-privileged=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            f"--service-account-key-file={pki / 'service-account.pub'}",
            f"--service-account-signing-key-file={pki / 'service-account.key'}",
            f"--kubelet-client-certificate={pki / 'kube-apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kube-apiserver-kubelet-client.key'}",
            # the node's name `node1` does not resolve; reach the kubelet by its address
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--profiling=false",
        ]

    def _controller_manager_args(self) -> list[str]:
        pki = self.pki
        config = self.state / "kube-controller-manager.kubeconfig"
        return [
            f"--kubeconfig={config}",
            "--port=0",
            "--secure-port=0",
            "--leader-elect=false",
            "--controllers=*",
            "--enable-hostpath-provisioner=true",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'service-account.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.state / 'kube-scheduler.kubeconfig'}",
            "--port=0",
            "--secure-port=0",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _kubelet_args(self, s: dict) -> list[str]:
        # no clusterDNS: there is no DNS image to run (pods connect by IP)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "readOnlyPort": 0,
            "port": s["kubelet_port"],
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": s["kubelet_healthz_port"],
            "clusterDomain": CLUSTER_DOMAIN,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            # never garbage-collect images: the engine's images are not only the cluster's
            "imageGCHighThresholdPercent": 100,
            "oomScoreAdj": 0,  # a negative one needs CAP_SYS_RESOURCE
            "volumePluginDir": str(self.state / "kubelet-plugins"),
        }
        path = self.state / "kubelet-config.json"
        path.write_text(json.dumps(config, indent=2) + "\n")
        return [
            f"--config={path}",
            f"--kubeconfig={self.state / 'kubelet.kubeconfig'}",
            "--container-runtime=docker",
            f"--pod-infra-container-image={PAUSE_IMAGE}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            f"--root-dir={self.kubelet_dir}",
            f"--cert-dir={self.state / 'kubelet-pki'}",
            f"--experimental-dockershim-root-directory={self.state / 'dockershim'}",
        ]

    def _proxy_args(self, s: dict) -> list[str]:
        return [
            f"--kubeconfig={self.state / 'kube-proxy.kubeconfig'}",
            "--proxy-mode=iptables",
            f"--cluster-cidr={POD_CIDR}",
            f"--hostname-override={NODE_NAME}",
            f"--healthz-bind-address=127.0.0.1:{s['proxy_healthz_port']}",
            f"--metrics-bind-address=127.0.0.1:{s['proxy_metrics_port']}",
            # leave the host's conntrack settings as they are
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--oom-score-adj=0",
            "--profiling=false",
        ]

    # --- stop ---

    def stop(self) -> None:
        """Stop the processes `start` started and remove what the cluster left behind."""
        with locked(self.state / "lock"):
            self._stop()

    def _stop(self) -> None:
        for name in reversed(COMPONENTS):
            pid = self.pid(name)
            if not pid:
                continue
            say(f"stopping {name} (pid {pid})")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while time.monotonic() < deadline and self.pid(name) == pid:
                time.sleep(0.1)
            if self.pid(name) == pid:
                say(f"{name} (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s; killing it")
                os.kill(pid, signal.SIGKILL)
        self._cleanup()

    def _cleanup(self) -> None:
        """Remove what a (stopped) cluster leaves: containers, mounts, chains, cgroups, data."""
        if docker_works():
            listing = run(
                ["docker", "ps", "-a", "--filter", "name=k8s_", "--format", "{{.ID}} {{.Names}}"],
                check=False,
                capture_output=True,
                text=True,
            ).stdout.split("\n")
            ids = [
                fields[0]
                for fields in (line.split(" ", 1) for line in listing if " " in line)
                if fields[1].startswith("k8s_")
            ]
            if ids:
                say(f"removing {len(ids)} pod container(s)")
                run(["docker", "rm", "-f", *ids], check=False, capture_output=True)
        points = mounts_under(self.kubelet_dir)
        for point in points:
            if run(["umount", point], check=False, capture_output=True).returncode != 0:
                run(["umount", "-l", point], check=False, capture_output=True)
        if points:
            say(f"unmounted {len(points)} kubelet mount(s)")
        chains = remove_kube_chains()
        if chains:
            say(f"removed {chains} KUBE-* iptables chain(s)")
        removed, left = remove_kubepods_cgroups()
        if removed or left:
            say(f"removed {removed} kubepods cgroup(s)" + (f", {left} still busy" if left else ""))
        sysctls = self.state / "sysctls.json"
        if sysctls.exists() and not self.running():
            write_sysctls(json.loads(sysctls.read_text()))
            sysctls.unlink()
        if mounts_under(self.kubelet_dir):
            raise ClusterError(f"mounts under {self.kubelet_dir} are left; unmount them")
        for runtime in ("etcd", "kubelet", "kubelet-pki", "kubelet-plugins", "dockershim", "pids"):
            shutil.rmtree(self.state / runtime, ignore_errors=True)
        self.settings_file.unlink(missing_ok=True)
        # the host-path provisioner's volumes and the kubelet's pod logs
        for leftover in (
            Path("/tmp/hostpath_pv"),
            Path("/var/log/pods"),
            Path("/var/log/containers"),
        ):
            shutil.rmtree(leftover, ignore_errors=True)


# --- command line ----------------------------------------------------------------------------


def cmd_build(args) -> int:
    started = time.monotonic()
    build()
    say(f"build: done ({time.monotonic() - started:.0f} s)")
    return 0


def cmd_start(args) -> int:
    Cluster().start()
    return 0


def cmd_stop(args) -> int:
    cluster = Cluster()
    was_running = bool(cluster.running())
    cluster.stop()
    say("stopped" if was_running else "not running (cleaned up any leftovers)")
    return 0


def cmd_status(args) -> int:
    cluster = Cluster()
    running = cluster.running()
    if running == COMPONENTS and cluster.apiserver_ready():
        ready = "Ready" if cluster.node_ready() else "not Ready"
        say(f"running: apiserver {cluster.apiserver_url}, node {NODE_NAME} {ready}")
        say(f"kubeconfig: {cluster.kubeconfig}")
        return 0
    if running:
        say(f"partly running: {', '.join(running)}; `stop` cleans it up")
        return 1
    say("not running")
    return 3


def cmd_kubeconfig(args) -> int:
    print(Cluster().kubeconfig)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in [
        ("build", cmd_build, "install the packages, build the binaries and the pause image"),
        ("start", cmd_start, "start the cluster (builds first when needed)"),
        ("stop", cmd_stop, "stop the cluster and clean up after it"),
        ("status", cmd_status, "whether the cluster runs (exit 0 if it does)"),
        ("kubeconfig", cmd_kubeconfig, "print the admin kubeconfig's path"),
    ]:
        sub.add_parser(name, help=text).set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ClusterError as e:
        print(f"kubernetes: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
