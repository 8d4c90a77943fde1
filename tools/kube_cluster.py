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

The tool is split along its parts: tools/kube_build.py (the build from Debian's source),
tools/kube_pki.py (certificates and kubeconfigs), tools/kube_hoststate.py (mounts, iptables,
cgroups and sysctls the cluster leaves on the host), tools/kube_common.py (what they share)
and tools/host.py (the helpers all the tools share). This module starts and stops the
processes and is the command line.

The module is also the tests' API: :class:`Cluster`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from host import docker_works, free_port, port_free, processes_named, program
from kube_build import BIN, ETCD, PAUSE_IMAGE, build
from kube_common import (
    APISERVER_PORT,
    CLUSTER_DOMAIN,
    NODE_IP,
    NODE_NAME,
    POD_CIDR,
    SERVICE_CIDR,
    STORAGE_CLASS,
    ClusterError,
    locked,
    run,
    say,
)
from kube_hoststate import (
    mounts_under,
    read_sysctls,
    reject_untranslated_service_traffic,
    remove_kube_chains,
    remove_kubepods_cgroups,
    remove_service_range_reject,
    write_sysctls,
)
from kube_pki import kubeconfig, write_pki

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".kube-cluster"

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
        reject_untranslated_service_traffic(SERVICE_CIDR)
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
        if remove_service_range_reject(SERVICE_CIDR):
            say(f"removed the local reject rules for the service range {SERVICE_CIDR}")
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
