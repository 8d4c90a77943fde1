"""The Helm chart installed on the real single-node cluster (tools/kube_cluster.py).

`helm install` runs the hub, the proxy and the GPU scheduler as pods from the local
``dlhub/hub`` image; everything after that goes through the `<fullname>-proxy-public`
Service, whose ClusterIP answers from the host through kube-proxy: the admin signs up and
logs in on the hub's forms, approves a user, whose server starts as a pod from the CPU image
with its home claim, serves JupyterLab and runs TensorFlow. `helm upgrade` keeps the
generated secrets and the running server; stopping the server removes its pod;
`helm uninstall` removes the workloads and keeps the claims.

Where the test cluster differs from a real one, the test arranges it, not the chart:

- no cluster DNS: the chart finds its Services through the variables the kubelet gives
  every pod (``<NAME>_SERVICE_HOST``), so nothing is needed here;
- the host-path provisioner makes root-owned directories and ignores ``fsGroup``: the
  chart's claims (the hub's and the scheduler's state) and the user's home bind to
  PersistentVolumes made here on host directories owned by uid 1000, reserved for them by
  ``claimRef``;
- no registry: the images are the local ones (``make images``), never pulled.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from hubtest import (
    REPO,
    Browserless,
    new_password,
    part_missing,
    run_code,
    setup_token_in,
    start_server,
    stop_server,
    token_api,
    wait_for,
)

pytestmark = pytest.mark.k8s

HUB_IMAGE = "dlhub/hub:0.1.0"
USER_IMAGE = "dlhub/singleuser:0.1.0"
HELM = REPO / ".venv" / "bin" / "helm"
CHART = REPO / "helm" / "dlhub"
RELEASE = "lab"
FULL = f"{RELEASE}-dlhub"  # the chart's <fullname> for this release
USER = "alice"
COMPONENTS = ("hub", "proxy", "gpu-scheduler")
INSTALL_TIMEOUT = 300

VALUES = {
    # local images only: the kubelet must never try to pull
    "images": {"hub": {"pullPolicy": "Never"}},
    "platform": {
        "auth": {"admin_users": ["admin"]},
        "culling": {"enabled": False},
        "hub": {"poll_interval": 2},
        "kubernetes": {
            "image": USER_IMAGE,
            "image_pull_policy": "IfNotPresent",
            "home_size": "1Gi",
        },
        "profiles": [{"name": "cpu", "cpu_limit": 1, "mem_limit": "2G", "default": True}],
        # the scheduler runs and reads the node (which has no GPUs)
        "gpus": {"enabled": True, "inventory": "kubernetes"},
    },
    "hub": {"db": {"size": "1Gi"}},
    "gpuScheduler": {"db": {"size": "1Gi"}},
}


# --- helpers ----------------------------------------------------------------------------------


class Release:
    """The installed release: the cluster, its namespace and how to reach and drive it."""

    def __init__(self, cluster, namespace: str, work: Path):
        self.cluster = cluster
        self.namespace = namespace
        self.work = work
        self.values = work / "values.yaml"
        self.base = ""  # http://<proxy-public ClusterIP>:80, once installed
        self.admin: Browserless | None = None
        self.token = ""  # the user's API token

    def helm(self, *args: str, timeout: float = INSTALL_TIMEOUT + 60):
        cmd = [str(HELM), *args, "--kubeconfig", str(self.cluster.kubeconfig)]
        cmd += ["--namespace", self.namespace]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def deploy(self, verb: str, values: dict = VALUES) -> float:
        """`helm install` or `helm upgrade` with these values, waiting for the pods to be
        Ready; returns the seconds it took. A failure shows the pods' state and logs."""
        self.values.write_text(yaml.safe_dump(values))
        started = time.monotonic()
        result = self.helm(verb, RELEASE, str(CHART), "--values", str(self.values),
                           "--wait", f"--timeout={INSTALL_TIMEOUT}s")  # fmt: skip
        if result.returncode != 0:
            pytest.fail(f"helm {verb} failed:\n{result.stderr}\n{self.diagnostics()}")
        for component in COMPONENTS:
            selector = (
                f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
            )
            self.cluster.kubectl("wait", "--for=condition=Ready", "pod", "-n", self.namespace,
                                 "-l", selector, "--timeout=120s", timeout=150)  # fmt: skip
        return time.monotonic() - started

    def diagnostics(self) -> str:
        """The pods, their descriptions and the logs of the chart's containers."""
        kubectl, ns = self.cluster.kubectl, self.namespace
        parts = [kubectl("get", "pods,pvc,svc", "-n", ns, "-o", "wide", check=False).stdout]
        parts.append(kubectl("describe", "pods", "-n", ns, check=False).stdout[-6000:])
        parts.append(kubectl("get", "events", "-n", ns, check=False).stdout[-4000:])
        for component in COMPONENTS:
            logs = kubectl("logs", "-n", ns, "--tail=60", "--all-containers", "-l",
                           f"app.kubernetes.io/component={component}", check=False)  # fmt: skip
            parts.append(f"--- {component} log\n{logs.stdout}{logs.stderr}")
        return "\n".join(parts)

    def pods(self, **labels: str) -> list[dict]:
        """The namespace's pods with these labels."""
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        result = self.cluster.kubectl("get", "pods", "-n", self.namespace, "-l", selector,
                                      "-o", "json")  # fmt: skip
        return json.loads(result.stdout)["items"]

    def pod(self, name: str) -> dict | None:
        result = self.cluster.kubectl("get", "pod", name, "-n", self.namespace, "-o", "json",
                                      check=False)  # fmt: skip
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        return json.loads(result.stdout)

    def secret_data(self, name: str) -> dict[str, str]:
        data = self.cluster.get("secret", name, self.namespace)["data"]
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def start_server(self) -> None:
        """Start the user's server through the proxy; a failure shows the pods and logs."""
        try:
            start_server(self.base, self.token, USER, timeout=300)
        except (AssertionError, TimeoutError) as e:
            pytest.fail(f"{e}\n{self.diagnostics()}")

    def server(self) -> dict | None:
        model = token_api(self.base, self.token, "GET", f"/hub/api/users/{USER}").json()
        return model["servers"].get("")


def host_volume(cluster, namespace: str, claim: str, path: Path) -> dict:
    """A PersistentVolume on a host directory owned by uid 1000, reserved for one claim,
    which binds to it instead of a provisioned (root-owned) directory."""
    path.mkdir(parents=True)
    shutil.chown(path, 1000, 1000)
    path.chmod(0o775)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{claim}", "labels": {"dlhub-test": namespace}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": cluster.storage_class,
            "hostPath": {"path": str(path), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }


# --- the release ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(kube_cluster, require_images, tmp_path_factory):
    require_images(HUB_IMAGE, USER_IMAGE)
    if not HELM.exists():
        part_missing("helm is not installed (python3 tools/helm.py install)")
    cluster = kube_cluster
    namespace = f"chart-{uuid.uuid4().hex[:8]}"
    work = tmp_path_factory.mktemp("chart-install")
    r = Release(cluster, namespace, work)
    cluster.create_namespace(namespace)
    try:
        claims = [f"{FULL}-hub-db", f"{FULL}-gpu-scheduler", f"home-{USER}"]
        cluster.apply(
            *(host_volume(cluster, namespace, claim, work / "volumes" / claim) for claim in claims)
        )
        seconds = r.deploy("install")
        print(f"helm install -> hub, proxy and scheduler Ready: {seconds:.1f} s")
        service = cluster.get("service", f"{FULL}-proxy-public", namespace)
        r.base = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
        yield r
    finally:
        r.helm("uninstall", RELEASE, "--wait", timeout=120)
        cluster.delete_namespace(namespace, timeout=120)
        scheduler_role = f"{namespace}-{FULL}-gpu-scheduler"
        cluster.kubectl("delete", "clusterrole,clusterrolebinding", scheduler_role,
                        "--ignore-not-found", "--wait=false", check=False)  # fmt: skip
        cluster.kubectl("delete", "pv", "-l", f"dlhub-test={namespace}", "--wait=false",
                        check=False)  # fmt: skip


@pytest.fixture(scope="module")
def users(release):
    """The admin (made with the one-time setup link of the hub's log, logged in through the
    proxy) and the user, approved by the admin, with an API token."""
    log = release.cluster.kubectl("logs", "-n", release.namespace, f"deployment/{FULL}-hub")
    admin = Browserless(release.base)
    password = new_password()
    admin.first_admin("admin", password, setup_token_in(log.stdout))
    admin.login("admin", password)
    admin.new_token()  # the admin may make API tokens
    user = Browserless(release.base)
    password = new_password()
    user.signup(USER, password)
    admin.approve(USER)
    user.login(USER, password)
    release.admin = admin
    release.token = user.new_token()
    return release


# --- tests ------------------------------------------------------------------------------------


def test_the_chart_runs_hub_proxy_and_scheduler_as_pods(release):
    ns, cluster = release.namespace, release.cluster
    for component in COMPONENTS:
        (pod,) = release.pods(**{"app.kubernetes.io/component": component})
        spec = pod["spec"]
        (container,) = spec["containers"]
        assert container["image"] == HUB_IMAGE, component
        assert spec["securityContext"]["runAsUser"] == 1000, component
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, component
    # the hub found the proxy's API and its own Service by ClusterIP, without DNS
    hub_service = cluster.get("service", f"{FULL}-hub", ns)["spec"]["clusterIP"]
    log = cluster.kubectl("logs", "-n", ns, f"deployment/{FULL}-hub").stdout
    assert f"Private Hub API connect url http://{hub_service}:8081/hub/" in log, log[-3000:]
    # the hub's SQLite database is on its claim, written as uid 1000
    claim = cluster.get("pvc", f"{FULL}-hub-db", ns)
    assert claim["status"]["phase"] == "Bound"
    db = release.work / "volumes" / f"{FULL}-hub-db" / "data" / "jupyterhub.sqlite"
    assert db.exists() and db.stat().st_uid == 1000
    # the proxy answers on the public Service and routes to the hub
    login = requests.get(f"{release.base}/hub/login", timeout=10)
    assert login.status_code == 200 and 'name="password"' in login.text, login.text[:500]


def test_a_users_server_is_a_pod_with_its_home_and_runs_tensorflow(users):
    release, ns = users, users.namespace
    started = time.monotonic()
    release.start_server()
    print(f"spawn -> ready through the proxy: {time.monotonic() - started:.1f} s")

    pod = release.pod(f"jupyter-{USER}")
    assert pod is not None and pod["status"]["phase"] == "Running"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == USER_IMAGE
    assert container["securityContext"]["runAsUser"] == 1000
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert claims[mounts["/home/jovyan"]] == f"home-{USER}"
    assert release.cluster.get("pvc", f"home-{USER}", ns)["status"]["phase"] == "Bound"
    # the hub, with the chart's Role, put the server's token in a Secret the pod refers to
    env = {e["name"]: e for e in container["env"]}
    ref = env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"jupyter-{USER}", "key": "JUPYTERHUB_API_TOKEN"}
    server_token = release.secret_data(f"jupyter-{USER}")["JUPYTERHUB_API_TOKEN"]
    pod_yaml = release.cluster.kubectl("get", "pod", f"jupyter-{USER}", "-n", ns, "-o", "yaml")
    assert len(server_token) >= 32 and server_token not in pod_yaml.stdout

    lab = token_api(release.base, release.token, "GET", f"/user/{USER}/lab")
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    code = "import os, tensorflow as tf\nprint(tf.__version__)\nprint(os.getuid())"
    out = run_code(release.base, release.token, USER, code, timeout=240)
    assert out["status"] == "ok", out
    version, uid = out["stdout"].split()
    assert version[0].isdigit() and uid == "1000", out


def test_the_gpu_schedulers_pages_answer_through_the_proxy(users):
    release = users
    page = token_api(release.base, release.token, "GET", "/services/gpu-scheduler/api/me")
    assert page.status_code == 200, page.text
    assert page.json()["leases"] == []


def test_upgrade_keeps_the_secrets_and_the_running_server(users):
    release, ns = users, users.namespace
    if release.server() is None:
        release.start_server()
    secrets = release.secret_data(f"{FULL}-secrets")
    before = release.pod(f"jupyter-{USER}")["metadata"]["uid"]

    seconds = release.deploy("upgrade")
    print(f"helm upgrade -> Ready: {seconds:.1f} s")

    assert release.secret_data(f"{FULL}-secrets") == secrets
    assert release.pod(f"jupyter-{USER}")["metadata"]["uid"] == before
    server = wait_for(release.server, 60, what="the hub to answer after the upgrade")
    assert server["ready"], server
    out = run_code(release.base, release.token, USER, "print(6 * 7)", timeout=120)
    assert out["stdout"].strip() == "42", out

    # a changed platform config restarts the hub (not the proxy); the new hub finds the
    # running server again and the user's kernel is still reached through the proxy
    (hub,) = release.pods(**{"app.kubernetes.io/component": "hub"})
    changed = copy.deepcopy(VALUES)
    changed["platform"]["hub"]["log_level"] = "DEBUG"
    seconds = release.deploy("upgrade", changed)
    print(f"helm upgrade with a changed config -> hub Ready: {seconds:.1f} s")
    (restarted,) = release.pods(**{"app.kubernetes.io/component": "hub"})
    assert restarted["metadata"]["uid"] != hub["metadata"]["uid"]
    assert release.secret_data(f"{FULL}-secrets") == secrets
    assert release.pod(f"jupyter-{USER}")["metadata"]["uid"] == before
    server = wait_for(release.server, 60, what="the restarted hub to answer")
    assert server["ready"], server
    out = run_code(release.base, release.token, USER, "print(6 * 7)", timeout=120)
    assert out["stdout"].strip() == "42", out
    # the hub's database survived on its claim: the user and the token still work
    assert release.cluster.get("pvc", f"{FULL}-hub-db", ns)["status"]["phase"] == "Bound"


def test_stop_removes_the_pod_and_keeps_the_home(users):
    release, ns = users, users.namespace
    if release.server() is None:
        release.start_server()
    started = time.monotonic()
    stop_server(release.base, release.token, USER, timeout=120)
    wait_for(lambda: release.pod(f"jupyter-{USER}") is None, 120, what="the pod to go")
    print(f"stop -> pod gone: {time.monotonic() - started:.1f} s")
    assert release.cluster.get("pvc", f"home-{USER}", ns)["status"]["phase"] == "Bound"


def test_uninstall_removes_the_workloads_and_keeps_the_claims(release):
    ns, cluster = release.namespace, release.cluster
    result = release.helm("uninstall", RELEASE, "--wait", timeout=180)
    assert result.returncode == 0, result.stderr
    deployments = cluster.get("deployments", "", ns)["items"]
    assert deployments == [], [d["metadata"]["name"] for d in deployments]
    # the garbage collector removes the ReplicaSets' pods
    chart_pods = {"app.kubernetes.io/instance": RELEASE}
    wait_for(lambda: not release.pods(**chart_pods), 120, what="the chart's pods to go")
    for claim in (f"{FULL}-hub-db", f"{FULL}-gpu-scheduler"):
        assert cluster.get("pvc", claim, ns)["status"]["phase"] == "Bound", claim
