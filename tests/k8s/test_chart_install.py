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

import copy
import time

import pytest
import requests
from kubekit import HUB_IMAGE, USER_IMAGE, installed_release, sign_in_admin

from hubtest import Browserless, new_password, run_code, stop_server, token_api, wait_for

pytestmark = pytest.mark.k8s

RELEASE = "lab"
FULL = f"{RELEASE}-dlhub"  # the chart's <fullname> for this release
USER = "alice"
COMPONENTS = ("hub", "proxy", "gpu-scheduler")

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


# --- the release ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(kube_cluster, require_images, tmp_path_factory):
    require_images(HUB_IMAGE, USER_IMAGE)
    work = tmp_path_factory.mktemp("chart-install")
    with installed_release(kube_cluster, work, RELEASE, VALUES, [USER], "chart") as r:
        yield r


@pytest.fixture(scope="module")
def users(release):
    """The admin (made with the one-time setup link of the hub's log, logged in through the
    proxy) and the user, approved by the admin, with an API token."""
    admin = sign_in_admin(release)
    admin.new_token()  # the admin may make API tokens
    user = Browserless(release.base)
    password = new_password()
    user.signup(USER, password)
    admin.approve(USER)
    user.login(USER, password)
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
    release.start_server(USER)
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
    if release.server(USER) is None:
        release.start_server(USER)
    secrets = release.secret_data(f"{FULL}-secrets")
    before = release.pod(f"jupyter-{USER}")["metadata"]["uid"]

    seconds = release.deploy("upgrade")
    print(f"helm upgrade -> Ready: {seconds:.1f} s")

    assert release.secret_data(f"{FULL}-secrets") == secrets
    assert release.pod(f"jupyter-{USER}")["metadata"]["uid"] == before
    server = wait_for(lambda: release.server(USER), 60, what="the hub to answer after the upgrade")
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
    server = wait_for(lambda: release.server(USER), 60, what="the restarted hub to answer")
    assert server["ready"], server
    out = run_code(release.base, release.token, USER, "print(6 * 7)", timeout=120)
    assert out["stdout"].strip() == "42", out
    # the hub's database survived on its claim: the user and the token still work
    assert release.cluster.get("pvc", f"{FULL}-hub-db", ns)["status"]["phase"] == "Bound"


def test_stop_removes_the_pod_and_keeps_the_home(users):
    release, ns = users, users.namespace
    if release.server(USER) is None:
        release.start_server(USER)
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
