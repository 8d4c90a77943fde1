"""The hub on a real Kubernetes cluster (tools/kube_cluster.py): user servers are pods.

The hub runs as a local process on the node (as ``hubtest.RunningHub`` runs it for the local
backend) with ``backend: kubernetes`` and the environment the chart gives it, except that
it starts its own proxy (no ``DLHUB_PROXY_API_URL``). It talks to the API server as the
chart's hub ServiceAccount, with exactly the chart's hub Role (rendered by ``helm template``);
user pods reach it on the docker bridge's gateway 172.17.0.1, and it reaches them by their
pod IPs. The shared volumes are the chart's claims (``sharedStorage``), bound, like the
users' homes, to host directories owned by the image's user (the test cluster's host-path
provisioner makes root-owned directories and ignores ``fsGroup``).

The GPU part declares two GPUs on the node (a PATCH of its status, as the NVIDIA device
plugin would advertise them) and reads them back as the GPU scheduler does, with the
chart's scheduler ServiceAccount.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubekit import PRODUCT_LABEL, admin_request, set_node_gpus

from hubtest import (
    REPO,
    RunningHub,
    free_port,
    part_missing,
    run_code,
    start_server,
    stop_server,
    token_api,
    wait_for,
)

pytestmark = pytest.mark.k8s

IMAGE = "dlhub/singleuser:0.1.0"
SMALL_IMAGE = "dlhub-local/debian:bookworm-slim"
RELEASE = "dlhub"  # the chart's <fullname> is then "dlhub"
HUB_SA = f"{RELEASE}-hub"
SCHEDULER_SA = f"{RELEASE}-gpu-scheduler"
GROUP = "ml-team"
HELM = REPO / ".venv" / "bin" / "helm"
PROXY = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
NODE_GATEWAY = "172.17.0.1"  # where pods reach the host (tools/kube_cluster.NODE_IP)


# --- the chart's objects ----------------------------------------------------------------------


def render_chart(namespace: str, *templates: str) -> list[dict]:
    """Objects of the chart's templates, as `helm install` into `namespace` would make them."""
    if not HELM.exists():
        part_missing("helm is not installed (python3 tools/helm.py install)")
    values = {
        "platform": {"gpus": {"enabled": True, "inventory": "kubernetes"}},
        "sharedStorage": {
            "enabled": True,
            "accessModes": ["ReadWriteOnce"],
            "datasets": {"size": "1Gi"},
            "shared": {"size": "1Gi"},
            "volumes": [{"name": GROUP, "size": "1Gi"}],
        },
    }
    show = [arg for t in templates for arg in ("--show-only", f"templates/{t}")]
    out = subprocess.run(
        [str(HELM), "template", RELEASE, str(REPO / "helm" / "dlhub"), "--namespace", namespace,
         "--values", "-", *show],
        input=yaml.safe_dump(values), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [doc for doc in yaml.safe_load_all(out) if doc]


def service_account_token(cluster, namespace: str, name: str, timeout: float = 60) -> str:
    """The token of a ServiceAccount (Kubernetes 1.20 makes a Secret for each)."""

    def secret_name():
        account = cluster.get("serviceaccount", name, namespace)
        return (account.get("secrets") or [{}])[0].get("name")

    secret = wait_for(secret_name, timeout, what=f"a token for {name}")
    data = cluster.get("secret", secret, namespace)["data"]
    return base64.b64decode(data["token"]).decode()


def token_kubeconfig(cluster, path: Path, token: str) -> Path:
    ca = base64.b64encode((cluster.pki / "ca.crt").read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": cluster.apiserver_url, "certificate-authority-data": ca},
            }
        ],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "test", "user": "sa"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def host_volume(cluster, name: str, claim: str, namespace: str, path: Path) -> dict:
    """A PersistentVolume on a host directory, reserved for one claim (which then binds
    to it rather than to a freshly provisioned, root-owned directory)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"dlhub-test": namespace}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": cluster.storage_class,
            "hostPath": {"path": str(path), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }


def can_i(cluster, namespace: str, account: str, verb: str, resource: str, ns=True) -> bool:
    """`kubectl auth can-i` as a ServiceAccount; `resource` may name a subresource
    (``pods/exec``)."""
    where = ["-n", namespace] if ns else []
    resource, _, sub = resource.partition("/")
    subresource = [f"--subresource={sub}"] if sub else []
    who = f"system:serviceaccount:{namespace}:{account}"
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, *subresource, *where, "--as", who, check=False
    )
    return result.stdout.strip() == "yes"


def token_of_server(cluster, namespace: str, secret: str) -> str:
    """The hub token in a server's token Secret (read as the cluster admin)."""
    data = cluster.get("secret", secret, namespace)["data"]
    token = base64.b64decode(data["JUPYTERHUB_API_TOKEN"]).decode()
    assert base64.b64decode(data["JPY_API_TOKEN"]).decode() == token
    return token


# --- the hub ----------------------------------------------------------------------------------


class KubeHub(RunningHub):
    """A RunningHub with the chart's environment contract added."""

    def __init__(self, workdir: Path, config: dict, extra_env: dict):
        super().__init__(workdir, config)
        self.extra_env = extra_env

    def env(self) -> dict:
        return {**super().env(), **self.extra_env}


class Setup:
    """What the module's tests share: the cluster, the namespace, the hub and its users."""

    cluster = None
    namespace = ""
    hub: KubeHub | None = None
    admin = None
    alice = None
    alice_token = ""
    host_dirs: Path | None = None


def in_own_thread(function, *args):
    """``function(*args)`` in a thread of its own, for code that runs an event loop: in a
    full run the browser tests' session-wide Playwright keeps one running in this thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def run_coroutine(coro):
    """Run ``coro`` to its end on an event loop of its own thread (see :func:`in_own_thread`)."""
    return in_own_thread(asyncio.run, coro)


@pytest.fixture(scope="module")
def setup(kube_cluster, require_images, tmp_path_factory):
    require_images(IMAGE, SMALL_IMAGE)
    if not PROXY.exists():
        part_missing("configurable-http-proxy is not installed (run `make install`)")
    s = Setup()
    s.cluster = cluster = kube_cluster
    s.namespace = namespace = f"hub-{uuid.uuid4().hex[:8]}"
    work = tmp_path_factory.mktemp("k8s-hub")
    cluster.create_namespace(namespace)
    objects = render_chart(
        namespace,
        "hub/serviceaccount.yaml",
        "hub/rbac.yaml",
        "gpu-scheduler/serviceaccount.yaml",
        "gpu-scheduler/rbac.yaml",
        "user/pvc.yaml",
    )
    claims = [o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert sorted(claims) == [
        f"{RELEASE}-datasets",
        f"{RELEASE}-group-{GROUP}",
        f"{RELEASE}-shared",
    ]
    # host directories for the claims: datasets root-owned with a file, the rest the user's
    s.host_dirs = dirs = work / "volumes"
    volumes = []
    for claim in [*claims, "home-alice"]:
        path = dirs / claim
        path.mkdir(parents=True)
        if claim.endswith("-datasets"):
            (path / "readme.txt").write_text("a dataset\n")
        else:
            shutil.chown(path, 1000, 100)
            path.chmod(0o775)
        volumes.append(host_volume(cluster, f"{namespace}-{claim}", claim, namespace, path))
    cluster.apply(*volumes)
    cluster.apply(*objects, namespace=namespace)
    hub_token = service_account_token(cluster, namespace, HUB_SA)
    kubeconfig = token_kubeconfig(cluster, work / "hub.kubeconfig", hub_token)
    scheduler_token = service_account_token(cluster, namespace, SCHEDULER_SA)
    token_kubeconfig(cluster, work / "scheduler.kubeconfig", scheduler_token)

    hub_port = free_port()
    config = {
        "backend": "kubernetes",
        "hub": {"hub_port": hub_port, "poll_interval": 2},
        "kubernetes": {"image": IMAGE, "image_pull_policy": "IfNotPresent", "home_size": "1Gi"},
        "volumes": {"groups": [{"group": GROUP}]},
        "profiles": [{"name": "cpu", "cpu_limit": 1, "mem_limit": "2G", "default": True}],
    }
    env = {
        "KUBECONFIG": str(kubeconfig),
        "POD_NAMESPACE": namespace,
        "DLHUB_RELEASE": RELEASE,
        "DLHUB_HUB_CONNECT_URL": f"http://{NODE_GATEWAY}:{hub_port}",
    }
    s.hub = KubeHub(work / "hub", config, env)
    s.hub.start(timeout=90)
    yield s
    try:
        s.hub.stop()
    finally:
        cluster.delete_namespace(namespace)
        cluster.kubectl("delete", "clusterrole,clusterrolebinding",
                        f"{namespace}-{SCHEDULER_SA}", "--wait=false", check=False)  # fmt: skip
        cluster.kubectl("delete", "pv", "-l", f"dlhub-test={namespace}", "--wait=false",
                        check=False)  # fmt: skip


@pytest.fixture(scope="module")
def users(setup):
    """The admin, and alice in the group that owns a volume, each with an API token."""
    hub = setup.hub
    admin = hub.admin()
    alice = hub.approved_user(admin, "alice")
    r = admin.api("POST", f"/groups/{GROUP}")
    assert r.status_code in (201, 409), r.text
    r = admin.api("POST", f"/groups/{GROUP}/users", json={"users": ["alice"]})
    assert r.status_code == 200, r.text
    return {"admin": admin.new_token(), "alice": alice.new_token()}


def pod(cluster, namespace: str, name: str) -> dict | None:
    result = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    return json.loads(result.stdout)


def server_of(hub, token: str, user: str) -> dict | None:
    return token_api(hub.url, token, "GET", f"/hub/api/users/{user}").json()["servers"].get("")


# --- tests ------------------------------------------------------------------------------------


def test_server_is_a_restricted_pod_with_its_home_and_runs_tensorflow(setup, users):
    hub, cluster, ns = setup.hub, setup.cluster, setup.namespace
    token = users["alice"]
    started = time.monotonic()
    start_server(hub.url, token, "alice", timeout=300)
    print(f"spawn -> ready through the hub: {time.monotonic() - started:.1f} s")

    manifest = pod(cluster, ns, "jupyter-alice")
    assert manifest is not None and manifest["status"]["phase"] == "Running"
    spec = manifest["spec"]
    (container,) = spec["containers"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["fsGroup"] == 100
    security = container["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (1000, 100)
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == IMAGE and container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"][:2] == ["dlhub-start", "jupyterhub-singleuser"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": str(2 * 1024**3)}
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    labels = manifest["metadata"]["labels"]
    assert labels["component"] == "singleuser-server"
    assert labels["app.kubernetes.io/instance"] == RELEASE
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/home/jovyan/datasets"]["readOnly"] is True
    assert not mounts["/home/jovyan/groups/ml-team"].get("readOnly")
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims[mounts["/home/jovyan"]["name"]] == "home-alice"
    assert claims[mounts["/home/jovyan/groups/ml-team"]["name"]] == f"{RELEASE}-group-{GROUP}"
    home = cluster.get("pvc", "home-alice", ns)
    assert home["status"]["phase"] == "Bound"
    assert home["spec"]["resources"]["requests"]["storage"] == "1Gi"
    # the server's hub token is in its Secret, and nowhere in what `kubectl get pod` shows
    server_token = token_of_server(cluster, ns, "jupyter-alice")
    assert len(server_token) >= 32
    pod_yaml = cluster.kubectl("get", "pod", "jupyter-alice", "-n", ns, "-o", "yaml").stdout
    assert server_token not in pod_yaml and token not in pod_yaml
    env = {e["name"]: e for e in container["env"]}
    for name in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"):
        assert env[name] == {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": "jupyter-alice", "key": name}},
        }

    # the user reaches JupyterLab through the proxy ...
    lab = token_api(hub.url, token, "GET", "/user/alice/lab")
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    # ... and runs TensorFlow in a kernel of the pod, as uid 1000 with no API token
    code = "\n".join(
        [
            "import os, pathlib, tensorflow as tf",
            "print(float(tf.reduce_sum(tf.constant([1.0, 2.0]))))",
            "print(os.getuid(), os.getgid(), os.environ.get('NVIDIA_VISIBLE_DEVICES'))",
            "print(os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount'))",
            "home = pathlib.Path.home()",
            "(home / 'groups/ml-team/note.txt').write_text('team')",
            "(home / 'shared/note.txt').write_text('all')",
            "print((home / 'datasets/readme.txt').read_text().strip())",
            "try:",
            "    (home / 'datasets/x').write_text('no')",
            "except OSError as e:",
            "    print('read-only', e.errno)",
            "print(sorted(p.name for p in home.glob('*.ipynb'))[:1])",
        ]
    )
    out = run_code(hub.url, token, "alice", code, timeout=240)
    assert out["status"] == "ok", out
    lines = out["stdout"].splitlines()
    assert lines[:5] == ["3.0", "1000 100 void", "False", "a dataset", "read-only 30"], lines
    assert lines[5] != "[]", "no starter notebooks were copied into the home"
    assert (setup.host_dirs / f"{RELEASE}-group-{GROUP}" / "note.txt").read_text() == "team"


def test_stop_removes_the_pod_and_keeps_the_home(setup, users):
    hub, cluster, ns = setup.hub, setup.cluster, setup.namespace
    token = users["alice"]
    if server_of(hub, token, "alice") is None:
        start_server(hub.url, token, "alice", timeout=300)
    started = time.monotonic()
    stop_server(hub.url, token, "alice", timeout=120)
    wait_for(lambda: pod(cluster, ns, "jupyter-alice") is None, 120, what="the pod to go")
    print(f"stop -> pod gone: {time.monotonic() - started:.1f} s")
    assert cluster.get("pvc", "home-alice", ns)["status"]["phase"] == "Bound"
    # the server's token Secret went with it
    gone = cluster.kubectl("get", "secret", "jupyter-alice", "-n", ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_a_pod_deleted_outside_the_hub_is_noticed(setup, users):
    hub, cluster, ns = setup.hub, setup.cluster, setup.namespace
    token = users["alice"]
    if server_of(hub, token, "alice") is None:
        start_server(hub.url, token, "alice", timeout=300)
    cluster.kubectl("delete", "pod", "jupyter-alice", "-n", ns, "--wait=false")
    deleted = time.monotonic()
    # hub.poll_interval is 2 s; the pod takes its grace period to go
    wait_for(lambda: server_of(hub, token, "alice") is None, 90, what="the hub to notice")
    print(f"pod deleted -> server shown stopped: {time.monotonic() - deleted:.1f} s")
    # and it starts again on the same home
    start_server(hub.url, token, "alice", timeout=300)
    out = run_code(hub.url, token, "alice", "print(open('groups/ml-team/note.txt').read())")
    assert out["stdout"].strip() == "team"
    stop_server(hub.url, token, "alice", timeout=120)


def test_the_hubs_service_account_may_do_what_kubespawner_needs_and_no_more(setup):
    cluster, ns = setup.cluster, setup.namespace
    allowed = [
        ("create", "pods"),
        ("delete", "pods"),
        ("get", "pods"),
        ("list", "pods"),
        ("watch", "pods"),
        ("create", "persistentvolumeclaims"),
        ("get", "persistentvolumeclaims"),
        ("delete", "persistentvolumeclaims"),
        ("list", "events"),
        ("watch", "events"),
        # each server's token Secret, made and deleted but never read back
        ("create", "secrets"),
        ("delete", "secrets"),
    ]
    forbidden = [
        ("create", "deployments.apps"),
        ("get", "secrets"),
        ("list", "secrets"),
        ("watch", "secrets"),
        ("update", "secrets"),
        ("patch", "secrets"),
        ("create", "services"),
        ("update", "pods"),
        ("patch", "pods"),
        ("create", "pods/exec"),
        ("get", "pods/log"),
        ("create", "pods/portforward"),
        ("create", "serviceaccounts"),
        ("create", "serviceaccounts/token"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("update", "persistentvolumeclaims"),
    ]
    for verb, resource in allowed:
        assert can_i(cluster, ns, HUB_SA, verb, resource), f"hub may not {verb} {resource}"
    for verb, resource in forbidden:
        assert not can_i(cluster, ns, HUB_SA, verb, resource), f"hub may {verb} {resource}"
    # nothing outside its namespace, nothing cluster-wide
    who = f"system:serviceaccount:{ns}:{HUB_SA}"
    for args in (
        ("create", "pods", "-n", "default"),
        ("create", "secrets", "-n", "default"),
        ("list", "nodes"),
        ("list", "pods", "-A"),
    ):
        result = cluster.kubectl("auth", "can-i", *args, "--as", who, check=False)
        assert result.stdout.strip() == "no", args


def test_the_schedulers_service_account_reads_nodes_and_no_pods(setup):
    """Pod specs carry users' environments: the scheduler, which only needs the nodes'
    GPUs, may read no pods anywhere, and nothing else."""
    cluster, ns = setup.cluster, setup.namespace
    for verb in ("get", "list", "watch"):
        assert can_i(cluster, ns, SCHEDULER_SA, verb, "nodes", ns=False), verb
        assert not can_i(cluster, ns, SCHEDULER_SA, verb, "pods", ns=False), verb
        assert not can_i(cluster, ns, SCHEDULER_SA, verb, "pods"), verb
        assert not can_i(cluster, ns, SCHEDULER_SA, verb, "secrets"), verb
    for verb, resource in [
        ("patch", "nodes"),
        ("update", "nodes/status"),
        ("create", "pods"),
        ("delete", "pods"),
        ("create", "pods/exec"),
        ("get", "pods/log"),
        ("list", "persistentvolumeclaims"),
        ("list", "events"),
    ]:
        assert not can_i(cluster, ns, SCHEDULER_SA, verb, resource), f"{verb} {resource}"
    who = f"system:serviceaccount:{ns}:{SCHEDULER_SA}"
    for verb in ("get", "list", "watch"):
        result = cluster.kubectl("auth", "can-i", verb, "pods", "-A", "--as", who, check=False)
        assert result.stdout.strip() == "no", verb
    # and really: with its own client and token, the API server refuses it pods
    from kubernetes_asyncio.client import CoreV1Api
    from kubernetes_asyncio.client.exceptions import ApiException

    from gpu_scheduler.inventory import api_client

    async def as_the_scheduler():
        kubeconfig = setup.host_dirs.parent / "scheduler.kubeconfig"
        api = await api_client({"KUBECONFIG": str(kubeconfig)})
        try:
            core = CoreV1Api(api)
            assert (await core.list_node()).items
            refused = []
            for call in (
                core.list_pod_for_all_namespaces(),
                core.list_namespaced_pod(ns),
                core.list_namespaced_secret(ns),
            ):
                with pytest.raises(ApiException) as info:
                    await call
                refused.append(info.value.status)
            return refused
        finally:
            await api.close()

    assert run_coroutine(as_the_scheduler()) == [403, 403, 403]


def test_the_default_service_account_of_proxy_and_user_pods_may_do_nothing(setup):
    """The proxy and users' servers run as the namespace's `default` account, with no token
    mounted; even were one mounted, it could read nothing."""
    cluster, ns = setup.cluster, setup.namespace
    for verb, resource in [
        ("get", "pods"),
        ("list", "pods"),
        ("list", "secrets"),
        ("get", "secrets"),
        ("create", "pods"),
        ("list", "persistentvolumeclaims"),
        ("list", "events"),
        ("list", "configmaps"),
        ("list", "services"),
    ]:
        assert not can_i(cluster, ns, "default", verb, resource), f"default may {verb} {resource}"
    assert not can_i(cluster, ns, "default", "list", "nodes", ns=False)


@pytest.fixture
def two_gpus(setup):
    """node1 advertises two `Tesla-T4` GPUs (as the device plugin and feature discovery
    would), for the length of one test."""
    cluster = setup.cluster
    node = cluster.node_name
    gpus = {"nvidia.com/gpu": "2"}
    admin_request(
        cluster,
        "PATCH",
        f"/api/v1/nodes/{node}/status",
        {"status": {"capacity": gpus, "allocatable": gpus}},
        "application/merge-patch+json",
    )
    cluster.kubectl("label", "node", node, f"{PRODUCT_LABEL}=Tesla-T4", "--overwrite")
    yield node
    cluster.kubectl("label", "node", node, f"{PRODUCT_LABEL}-", check=False)
    remove = [
        {"op": "remove", "path": f"/status/{field}/nvidia.com~1gpu"}
        for field in ("capacity", "allocatable")
    ]
    admin_request(
        cluster, "PATCH", f"/api/v1/nodes/{node}/status", remove, "application/json-patch+json"
    )


def gpu_pod(name: str, selector: dict, limits: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsUser": 1000},
            "nodeSelector": selector,
            "containers": [
                {
                    "name": "main",
                    "image": SMALL_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "600"],
                    "resources": {"limits": limits},
                }
            ],
        },
    }


def test_gpu_inventory_from_nodes_and_leases_placed_on_them(setup, two_gpus, monkeypatch):
    from gpu_scheduler.inventory import InventoryError, from_kubernetes
    from gpu_scheduler.model import Request
    from gpu_scheduler.service import scheduler_from_config
    from hub_config.config import validate
    from hub_config.k8s_objects import gpu_placement

    cluster, ns = setup.cluster, setup.namespace
    work = setup.host_dirs.parent
    # what the scheduler sees, as the chart's scheduler ServiceAccount
    monkeypatch.setenv("KUBECONFIG", str(work / "scheduler.kubeconfig"))
    node = cluster.node()
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "2"
    cfg = validate({"backend": "kubernetes", "gpus": {"enabled": True, "inventory": "kubernetes"}})
    scheduler = in_own_thread(scheduler_from_config, cfg)
    devices = sorted(scheduler.devices.values(), key=lambda d: d.uuid)
    assert [(d.uuid, d.model) for d in devices] == [
        (f"{two_gpus}/Tesla-T4/0", "Tesla-T4"),
        (f"{two_gpus}/Tesla-T4/1", "Tesla-T4"),
    ]
    # the hub's account may not read nodes
    with pytest.raises(InventoryError, match="403"):
        run_coroutine(from_kubernetes(environ={"KUBECONFIG": str(work / "hub.kubeconfig")}))

    # two users get a GPU each; the third waits
    for i, user in enumerate(["ann", "bob", "cy"]):
        scheduler.submit(Request(f"r{i}", user, "", 1, float(i)), float(i))
    assert sorted(scheduler.leases) == ["r0", "r1"]
    assert list(scheduler.queue) == ["r2"]

    # a pod placed as the hub places a lease's GPUs runs on the node that has them; with
    # both taken, a third pod asking for one is not scheduled
    for lease in ("r0", "r1"):
        selector, limits = gpu_placement(scheduler.leases[lease].devices, PRODUCT_LABEL)
        cluster.apply(gpu_pod(f"gpu-{lease}", selector, limits), namespace=ns)
    for lease in ("r0", "r1"):
        cluster.kubectl("wait", "--for=condition=Ready", f"pod/gpu-{lease}", "-n", ns,
                        "--timeout=90s", timeout=120)  # fmt: skip
    selector, limits = gpu_placement([f"{two_gpus}/Tesla-T4/0"], PRODUCT_LABEL)
    cluster.apply(gpu_pod("gpu-third", selector, limits), namespace=ns)

    def unschedulable():
        status = cluster.get("pod", "gpu-third", ns)["status"]
        for condition in status.get("conditions", []):
            if condition["type"] == "PodScheduled" and condition["status"] == "False":
                return condition.get("message", "")
        return None

    message = wait_for(unschedulable, 60, what="the third GPU pod to be refused")
    assert "nvidia.com/gpu" in message
    cluster.kubectl("delete", "pod", "gpu-r0", "gpu-r1", "gpu-third", "-n", ns, "--wait=false")


def start_gpu_scheduler(setup, hub: KubeHub, work: Path, secret: str, token: str, user: str):
    """The scheduler as the chart's gpu-scheduler Deployment runs it (the hub's config,
    the scheduler's ServiceAccount), and a function answering its GPUs per model as
    ``user`` sees them (``api/hub/capacity``; None until it answers)."""
    import sys

    import requests

    gpus = hub.config["gpus"]
    scheduler_url = f"http://127.0.0.1:{gpus['port']}"
    hub_port = hub.config["hub"]["hub_port"]
    env = {
        **hub.env(),
        "KUBECONFIG": str(setup.host_dirs.parent / "scheduler.kubeconfig"),
        "DLHUB_GPU_DB_URL": f"sqlite:///{work / 'gpu-scheduler.sqlite'}",
        "DLHUB_GPU_SHARED_SECRET": secret,
        "JUPYTERHUB_SERVICE_NAME": "gpu-scheduler",
        "JUPYTERHUB_CLIENT_ID": "service-gpu-scheduler",
        "JUPYTERHUB_SERVICE_URL": scheduler_url,
        "JUPYTERHUB_SERVICE_PREFIX": "/services/gpu-scheduler/",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub_port}/hub/api",
        "JUPYTERHUB_API_TOKEN": token,
    }
    log_file = work / "gpu-scheduler.log"
    with open(log_file, "ab") as log:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "gpu_scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    headers = {"Authorization": f"dlhub-hub {secret}"}
    capacity_url = f"{scheduler_url}/services/gpu-scheduler/api/hub/capacity?user={user}"

    def capacity():
        assert scheduler.poll() is None, log_file.read_text()
        try:
            r = requests.get(capacity_url, headers=headers, timeout=5)
        except requests.ConnectionError:
            return None  # not listening yet
        return r.json()["models"] if r.status_code == 200 else None

    return scheduler, capacity


def test_the_scheduler_follows_gpus_joining_and_leaving_the_cluster(setup):
    """The scheduler runs with a node that has no GPUs; the node's status gains two (as the
    device plugin would declare them when a GPU node joins) and the scheduler's capacity
    follows within seconds, without a restart; the GPUs go and the capacity drops to 0."""
    cluster = setup.cluster
    work = setup.host_dirs.parent / "live-inventory"
    secret, token = uuid.uuid4().hex, uuid.uuid4().hex
    config = {
        "backend": "kubernetes",
        "kubernetes": {"image": IMAGE},
        "gpus": {"enabled": True, "inventory": "kubernetes", "port": free_port()},
        "profiles": [
            {"name": "cpu", "cpu_limit": 1, "mem_limit": "1G", "default": True},
            {"name": "t4", "cpu_limit": 1, "mem_limit": "1G", "gpus": 1},
        ],
    }
    hub = KubeHub(work, config, {"POD_NAMESPACE": setup.namespace, "DLHUB_RELEASE": RELEASE})
    set_node_gpus(cluster, 0)
    cluster.kubectl("label", "node", cluster.node_name, f"{PRODUCT_LABEL}=Tesla-T4", "--overwrite")
    scheduler, capacity = start_gpu_scheduler(setup, hub, work, secret, token, "gina")
    try:
        wait_for(lambda: capacity() is not None, 60, what="the scheduler to answer")
        assert capacity() == {}
        set_node_gpus(cluster, 2)
        started = time.monotonic()
        wait_for(lambda: capacity() == {"Tesla-T4": {"total": 2, "free": 2}}, 10,
                 what="the scheduler to see the node's two GPUs")  # fmt: skip
        joined = time.monotonic() - started
        set_node_gpus(cluster, 0)
        wait_for(lambda: capacity() == {}, 10, what="the scheduler to see the GPUs gone")
        log = (work / "gpu-scheduler.log").read_text()
        assert "GPU inventory from the cluster's nodes: 2 GPUs (2 Tesla-T4)" in log
        assert log.count("GPU inventory from the cluster's nodes: 0 GPUs") >= 2, log
        assert joined < 10
    finally:
        scheduler.terminate()
        scheduler.wait(10)
        cluster.kubectl("label", "node", cluster.node_name, f"{PRODUCT_LABEL}-", check=False)
        set_node_gpus(cluster, None)


def test_a_gpu_profile_gets_a_lease_and_a_pod_on_the_gpu_node(setup, two_gpus):
    """The scheduler as the chart runs it (an external service, reading the nodes as its
    ServiceAccount) and a hub with GPU profiles: the server gets the leased GPU as an
    `nvidia.com/gpu` limit on the node that has it, and gives it back at once when it
    stops, even after a hub restart (the spawner state keeps profile and lease)."""
    cluster, ns = setup.cluster, setup.namespace
    work = setup.host_dirs.parent / "gpu-hub"
    scheduler_port, hub_port = free_port(), free_port()
    token, secret = uuid.uuid4().hex, uuid.uuid4().hex
    config = {
        "backend": "kubernetes",
        "hub": {"hub_port": hub_port, "poll_interval": 2},
        "kubernetes": {"image": IMAGE, "home_size": "1Gi"},
        "volumes": {"datasets": {"enabled": False}, "shared": {"enabled": False}},
        # only the check at the scheduler's start: the GPU must come back by the stop itself
        "gpus": {
            "enabled": True,
            "inventory": "kubernetes",
            "port": scheduler_port,
            "check_every": 3600,
        },
        "profiles": [
            {"name": "cpu", "cpu_limit": 1, "mem_limit": "1G", "default": True},
            {"name": "t4", "cpu_limit": 1, "mem_limit": "2G", "gpus": 1},
        ],
    }
    scheduler_url = f"http://127.0.0.1:{scheduler_port}"
    home = work / "home-gina"
    home.mkdir(parents=True)
    shutil.chown(home, 1000, 100)
    cluster.apply(host_volume(cluster, f"{ns}-home-gina", "home-gina", ns, home))
    hub = KubeHub(
        work,
        config,
        {
            "KUBECONFIG": str(setup.host_dirs.parent / "hub.kubeconfig"),
            "POD_NAMESPACE": ns,
            "DLHUB_RELEASE": RELEASE,
            "DLHUB_HUB_CONNECT_URL": f"http://{NODE_GATEWAY}:{hub_port}",
            "DLHUB_GPU_SCHEDULER_URL": scheduler_url,
            "DLHUB_GPU_SCHEDULER_TOKEN": token,
            "DLHUB_GPU_SHARED_SECRET": secret,
        },
    )
    scheduler, capacity = start_gpu_scheduler(setup, hub, work, secret, token, "gina")
    try:
        assert wait_for(capacity, 60, what="the scheduler") == {
            "Tesla-T4": {"total": 2, "free": 2}
        }
        hub.start(timeout=90)
        admin = hub.admin()
        gina = hub.approved_user(admin, "gina")
        user_token = gina.new_token()
        start_server(hub.url, user_token, "gina", options={"profile": "t4"}, timeout=300)
        manifest = pod(cluster, ns, "jupyter-gina")
        spec = manifest["spec"]
        (container,) = spec["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["nodeSelector"] == {
            "kubernetes.io/hostname": cluster.node_name,
            PRODUCT_LABEL: "Tesla-T4",
        }
        assert spec["nodeName"] == cluster.node_name
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert "NVIDIA_VISIBLE_DEVICES" not in env
        assert env["DLHUB_PROFILE"] == "t4"
        assert capacity() == {"Tesla-T4": {"total": 2, "free": 1}}
        # the scheduler's pages are behind the hub's OAuth, through the proxy
        page = token_api(hub.url, user_token, "GET", "/services/gpu-scheduler/api/me")
        assert page.status_code == 200, page.text
        assert len(page.json()["leases"]) == 1

        # the hub restarts (the pod stays): profile and lease come back from the spawner
        # state, so the stop gives the GPU back at once
        hub.stop()
        hub.start(timeout=90)
        stop_server(hub.url, user_token, "gina", timeout=120)
        wait_for(lambda: capacity()["Tesla-T4"]["free"] == 2, 5, what="the GPU back")
    finally:
        hub.stop()
        scheduler.terminate()
        scheduler.wait(10)
