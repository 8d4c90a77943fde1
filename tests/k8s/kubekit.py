"""What the Kubernetes modules share: the Helm chart installed from local images
(:class:`Release`, :func:`installed_release`), host-directory volumes for its claims, the
first admin signed in through the proxy, and the node's declared GPUs.

- :class:`Release`: an installed release (its namespace, ``helm``, the proxy's public base
  URL, pods, secrets, diagnostics of a failure);
- :func:`installed_release`: ``helm install`` into a fresh namespace with claims bound to
  host directories owned by uid 1000 (the test cluster's host-path provisioner makes
  root-owned ones and ignores ``fsGroup``); everything removed afterwards;
- :func:`sign_in_admin`: the configured admin made with the one-time setup link of the hub's
  log, logged in through the proxy;
- :func:`admin_request` and :func:`set_node_gpus`: node1's ``nvidia.com/gpu`` declared as
  NVIDIA's device plugin would (kubectl 1.20 cannot patch a status).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import ssl
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from hubtest import REPO, Browserless, new_password, setup_token_in, start_server, token_api

HUB_IMAGE = "dlhub/hub:0.1.0"
USER_IMAGE = "dlhub/singleuser:0.1.0"
HELM = REPO / ".venv" / "bin" / "helm"
CHART = REPO / "helm" / "dlhub"
COMPONENTS = ("hub", "proxy", "gpu-scheduler")
INSTALL_TIMEOUT = 300
PRODUCT_LABEL = "nvidia.com/gpu.product"


class Release:
    """An installed release: the cluster, its namespace and how to reach and drive it."""

    def __init__(self, cluster, namespace: str, work: Path, name: str, values: dict):
        self.cluster = cluster
        self.namespace = namespace
        self.work = work
        self.name = name
        self.full = f"{name}-dlhub"  # the chart's <fullname>
        self.default_values = values
        self.values = work / "values.yaml"
        self.base = ""  # http://<proxy-public ClusterIP>:80, once installed
        self.admin: Browserless | None = None
        self.token = ""  # the (first) user's API token

    def helm(self, *args: str, timeout: float = INSTALL_TIMEOUT + 60):
        cmd = [str(HELM), *args, "--kubeconfig", str(self.cluster.kubeconfig)]
        cmd += ["--namespace", self.namespace]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def deploy(self, verb: str, values: dict | None = None) -> float:
        """`helm install` or `helm upgrade` with these values (the release's by default),
        waiting for the pods to be Ready; returns the seconds it took. A failure shows the
        pods' state and logs."""
        self.values.write_text(yaml.safe_dump(values or self.default_values))
        started = time.monotonic()
        result = self.helm(verb, self.name, str(CHART), "--values", str(self.values),
                           "--wait", f"--timeout={INSTALL_TIMEOUT}s")  # fmt: skip
        if result.returncode != 0:
            pytest.fail(f"helm {verb} failed:\n{result.stderr}\n{self.diagnostics()}")
        for component in COMPONENTS:
            self.wait_ready(component)
        return time.monotonic() - started

    def selector(self, component: str) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"

    def wait_ready(self, component: str, timeout: int = 120) -> None:
        self.cluster.kubectl("wait", "--for=condition=Ready", "pod", "-n", self.namespace,
                             "-l", self.selector(component), f"--timeout={timeout}s",
                             timeout=timeout + 30)  # fmt: skip

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

    def component_pods(self, component: str) -> list[dict]:
        """The pods of one of the chart's components, those being deleted included."""
        return self.pods(
            **{"app.kubernetes.io/instance": self.name, "app.kubernetes.io/component": component}
        )

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

    def start_server(self, user: str, token: str | None = None, options=None) -> None:
        """Start ``user``'s server through the proxy; a failure shows the pods and logs."""
        try:
            start_server(self.base, token or self.token, user, options, timeout=300)
        except (AssertionError, TimeoutError) as e:
            pytest.fail(f"{e}\n{self.diagnostics()}")

    def server(self, user: str, token: str | None = None) -> dict | None:
        model = token_api(self.base, token or self.token, "GET", f"/hub/api/users/{user}").json()
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


@contextlib.contextmanager
def installed_release(cluster, work: Path, name: str, values: dict, homes: list[str], prefix: str):
    """The chart installed as ``name`` into a new namespace ``<prefix>-<hex>``, its claims
    and the ``homes`` (``home-<user>``) bound to host directories under ``work``; yields the
    :class:`Release` and removes the release, its namespace and volumes afterwards."""
    if not HELM.exists():
        from hubtest import part_missing

        part_missing("helm is not installed (python3 tools/helm.py install)")
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    release = Release(cluster, namespace, work, name, values)
    cluster.create_namespace(namespace)
    try:
        full = release.full
        claims = [f"{full}-hub-db", f"{full}-gpu-scheduler", *(f"home-{u}" for u in homes)]
        cluster.apply(
            *(host_volume(cluster, namespace, claim, work / "volumes" / claim) for claim in claims)
        )
        seconds = release.deploy("install")
        print(f"helm install -> hub, proxy and scheduler Ready: {seconds:.1f} s")
        service = cluster.get("service", f"{full}-proxy-public", namespace)
        release.base = (
            f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
        )
        yield release
    finally:
        release.helm("uninstall", name, "--wait", timeout=120)
        cluster.delete_namespace(namespace, timeout=120)
        scheduler_role = f"{namespace}-{release.full}-gpu-scheduler"
        cluster.kubectl("delete", "clusterrole,clusterrolebinding", scheduler_role,
                        "--ignore-not-found", "--wait=false", check=False)  # fmt: skip
        cluster.kubectl("delete", "pv", "-l", f"dlhub-test={namespace}", "--wait=false",
                        check=False)  # fmt: skip


def sign_in_admin(release: Release, name: str = "admin") -> Browserless:
    """The configured admin ``name``, made with the one-time setup link of the hub's log and
    logged in through the proxy; kept as ``release.admin``."""
    hub = f"deployment/{release.full}-hub"
    log = release.cluster.kubectl("logs", "-n", release.namespace, hub)
    admin = Browserless(release.base)
    password = new_password()
    admin.first_admin(name, password, setup_token_in(log.stdout))
    admin.login(name, password)
    release.admin = admin
    return admin


def admin_request(cluster, method: str, path: str, body, content_type: str) -> dict:
    """A raw API call as the cluster admin (kubectl 1.20 cannot patch a status)."""
    context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    context.load_cert_chain(cluster.pki / "admin.crt", cluster.pki / "admin.key")
    request = urllib.request.Request(
        cluster.apiserver_url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": content_type},
    )
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with opener.open(request, timeout=10) as response:
        return json.load(response)


def set_node_gpus(cluster, count: int | None) -> None:
    """Declare ``count`` `nvidia.com/gpu` on node1's status, as NVIDIA's device plugin
    would (None: remove the resource)."""
    path = f"/api/v1/nodes/{cluster.node_name}/status"
    if count is None:
        remove = [
            {"op": "remove", "path": f"/status/{field}/nvidia.com~1gpu"}
            for field in ("capacity", "allocatable")
        ]
        admin_request(cluster, "PATCH", path, remove, "application/json-patch+json")
        return
    gpus = {"nvidia.com/gpu": str(count)}
    body = {"status": {"capacity": gpus, "allocatable": gpus}}
    admin_request(cluster, "PATCH", path, body, "application/merge-patch+json")
