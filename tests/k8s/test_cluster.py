"""The single-node cluster of tools/kube_cluster.py runs real pods on the local Docker engine.

Each test works in its own namespace; images are local (no registry), so pods say
``imagePullPolicy: Never``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.k8s

BASE_IMAGE = "dlhub-local/debian:bookworm-slim"  # tools/docker_engine.py base
PYTHON_IMAGE = "dlhub/hub:0.1.0"  # make images; has python3 on its PATH


def pod(name: str, image: str, command: list[str], **spec) -> dict:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": command,
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsUser": 1000},
            "containers": [container],
            **spec,
        },
    }


def phase(cluster, namespace: str, name: str) -> str:
    return cluster.get("pod", name, namespace)["status"].get("phase", "")


def wait_for_phase(cluster, namespace: str, name: str, wanted: set[str], timeout=90) -> str:
    deadline = time.monotonic() + timeout
    current = ""
    while time.monotonic() < deadline:
        current = phase(cluster, namespace, name)
        if current in wanted:
            return current
        time.sleep(0.25)
    raise AssertionError(f"pod {namespace}/{name} is {current!r}, not {wanted}, after {timeout}s")


def wait_ready(cluster, namespace: str, name: str, timeout=90) -> None:
    cluster.kubectl(
        "wait", "--for=condition=Ready", f"pod/{name}", "-n", namespace, f"--timeout={timeout}s",
        timeout=timeout + 30,
    )  # fmt: skip


def pod_containers(namespace: str, name: str, all_states: bool = False) -> list[dict]:
    """The Docker containers of a pod (the kubelet labels them), from `docker ps`."""
    cmd = ["docker", "ps", "--no-trunc", "--format", "{{json .}}"]
    if all_states:
        cmd.append("--all")
    cmd += [
        "--filter",
        f"label=io.kubernetes.pod.namespace={namespace}",
        "--filter",
        f"label=io.kubernetes.pod.name={name}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_node_is_ready_with_allocatable_cpu_and_memory(kube_cluster):
    node = kube_cluster.node()
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    allocatable = node["status"]["allocatable"]
    assert int(allocatable["cpu"]) == os.cpu_count()
    assert allocatable["memory"].endswith("Ki") and int(allocatable["memory"][:-2]) > 1024**2
    assert {"type": "InternalIP", "address": kube_cluster.node_ip} in node["status"]["addresses"]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")


def test_pod_from_a_local_image_runs_as_uid_1000_in_docker_and_logs(
    kube_cluster, k8s_namespace, require_images
):
    require_images(BASE_IMAGE)
    script = 'echo "uid=$(id -u)"; echo hello-from-node1; exec sleep 600'
    started = time.monotonic()
    kube_cluster.apply(pod("hello", BASE_IMAGE, ["sh", "-c", script]), namespace=k8s_namespace)
    wait_ready(kube_cluster, k8s_namespace, "hello")
    print(f"pod create -> Ready: {time.monotonic() - started:.1f} s")

    containers = pod_containers(k8s_namespace, "hello")
    names = [c["Names"] for c in containers]
    assert any(n.startswith("k8s_main_hello_") for n in names), names
    assert any(n.startswith("k8s_POD_hello_") for n in names), names  # the pause container
    main = next(c for c in containers if c["Names"].startswith("k8s_main_"))
    assert main["Image"].startswith(BASE_IMAGE) or main["Image"].startswith("sha256:")
    user = subprocess.run(
        ["docker", "inspect", "--format", "{{.Config.User}}", main["ID"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert user == "1000"

    deadline = time.monotonic() + 30
    logs = ""
    while "hello-from-node1" not in logs and time.monotonic() < deadline:
        logs = kube_cluster.kubectl("logs", "hello", "-n", k8s_namespace, check=False).stdout
        time.sleep(0.25)
    assert logs.splitlines()[:2] == ["uid=1000", "hello-from-node1"]


def test_deleting_a_pod_removes_its_containers(kube_cluster, k8s_namespace, require_images):
    require_images(BASE_IMAGE)
    kube_cluster.apply(pod("doomed", BASE_IMAGE, ["sleep", "600"]), namespace=k8s_namespace)
    wait_ready(kube_cluster, k8s_namespace, "doomed")
    assert pod_containers(k8s_namespace, "doomed")

    kube_cluster.kubectl("delete", "pod", "doomed", "-n", k8s_namespace, "--timeout=60s")
    # no container of the pod runs any more once the pod is gone ...
    assert pod_containers(k8s_namespace, "doomed") == []
    # ... and the kubelet removes the stopped ones (the sandbox by its garbage collection,
    # which runs every minute)
    deadline = time.monotonic() + 120
    while pod_containers(k8s_namespace, "doomed", all_states=True):
        assert time.monotonic() < deadline, pod_containers(k8s_namespace, "doomed", True)
        time.sleep(1)


def test_pvc_on_the_default_storage_class_is_shared_by_pods(
    kube_cluster, k8s_namespace, require_images
):
    require_images(BASE_IMAGE)
    classes = kube_cluster.get("storageclass")["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
    ]
    assert default == [kube_cluster.storage_class]
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kube_cluster.apply(claim, namespace=k8s_namespace)
    deadline = time.monotonic() + 60
    while kube_cluster.get("pvc", "data", k8s_namespace)["status"].get("phase") != "Bound":
        assert time.monotonic() < deadline, "the claim was not bound within 60 s"
        time.sleep(0.5)
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
    mount = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    # host-path volumes are created root-owned: an init container as root hands it to uid 1000
    chown = {
        "name": "chown",
        "image": BASE_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["chown", "1000:1000", "/data"],
        "securityContext": {"runAsUser": 0},
        **mount,
    }
    writer = pod(
        "writer",
        BASE_IMAGE,
        ["sh", "-c", "echo written-by-writer > /data/note.txt"],
        container=mount,
        volumes=[volume],
        initContainers=[chown],
    )
    kube_cluster.apply(writer, namespace=k8s_namespace)
    assert wait_for_phase(kube_cluster, k8s_namespace, "writer", {"Succeeded", "Failed"}) == (
        "Succeeded"
    )
    reader = pod(
        "reader", BASE_IMAGE, ["cat", "/data/note.txt"], container=mount, volumes=[volume]
    )
    kube_cluster.apply(reader, namespace=k8s_namespace)
    assert wait_for_phase(kube_cluster, k8s_namespace, "reader", {"Succeeded", "Failed"}) == (
        "Succeeded"
    )
    logs = kube_cluster.kubectl("logs", "reader", "-n", k8s_namespace).stdout
    assert logs.strip() == "written-by-writer"


def test_cluster_ip_service_answers_from_the_host_through_kube_proxy(
    kube_cluster, k8s_namespace, require_images
):
    require_images(PYTHON_IMAGE)
    script = (
        "mkdir -p /tmp/www && echo served-by-pod > /tmp/www/index.txt && cd /tmp/www "
        "&& exec python3 -m http.server 8000"
    )
    probe = {
        "readinessProbe": {"httpGet": {"path": "/index.txt", "port": 8000}, "periodSeconds": 1}
    }
    server = pod("web", PYTHON_IMAGE, ["sh", "-c", script], container=probe)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8000}],
        },
    }
    kube_cluster.apply(server, service, namespace=k8s_namespace)
    wait_ready(kube_cluster, k8s_namespace, "web")
    cluster_ip = kube_cluster.get("service", "web", k8s_namespace)["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.0.0.")
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    deadline = time.monotonic() + 30
    body, last = None, None
    while body is None and time.monotonic() < deadline:
        try:
            with direct.open(f"http://{cluster_ip}/index.txt", timeout=3) as r:
                body = r.read().decode()
        except OSError as e:
            last = e
            time.sleep(0.5)
    assert body == "served-by-pod\n", f"no answer from {cluster_ip}:80 (last error: {last})"


def test_service_addresses_kube_proxy_has_not_translated_are_refused_on_this_machine(kube_cluster):
    """No Service holds 10.0.0.254: the connection is refused here at once; without the
    cluster's reject rule it would leave through the default route and be answered (or
    hang) off this machine."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.URLError) as refused:
        direct.open("http://10.0.0.254/", timeout=10)
    assert isinstance(refused.value.reason, ConnectionRefusedError), refused.value
    rules = subprocess.run(
        ["iptables", "-w", "-S", "OUTPUT"], capture_output=True, text=True, check=True
    ).stdout
    assert "10.0.0.0/24" in rules and "REJECT" in rules


API_CHECK = """
import json, os, ssl, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
env = os.environ
base = "https://%s:%s" % (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"])
context = ssl.create_default_context(cafile=sa + "/ca.crt")
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
)
print("version", json.load(opener.open(base + "/version", timeout=10))["gitVersion"])
namespace = open(sa + "/namespace").read()
request = urllib.request.Request(
    base + "/api/v1/namespaces/%s/secrets" % namespace,
    headers={"Authorization": "Bearer " + open(sa + "/token").read()},
)
try:
    opener.open(request, timeout=10)
    print("secrets", 200)
except urllib.error.HTTPError as e:
    print("secrets", e.code, json.load(e)["message"])
"""


def test_pods_reach_the_apiserver_through_the_kubernetes_service_with_their_token(
    kube_cluster, k8s_namespace, require_images
):
    require_images(PYTHON_IMAGE)
    check = pod("api", PYTHON_IMAGE, ["python3", "-c", API_CHECK])
    kube_cluster.apply(check, namespace=k8s_namespace)
    assert wait_for_phase(kube_cluster, k8s_namespace, "api", {"Succeeded", "Failed"}) == (
        "Succeeded"
    ), kube_cluster.kubectl("logs", "api", "-n", k8s_namespace, check=False).stdout
    lines = kube_cluster.kubectl("logs", "api", "-n", k8s_namespace).stdout.splitlines()
    # TLS to the Service address verifies against the cluster CA ...
    assert lines[0] == "version v1.20.2"
    # ... and the token authenticates the pod's ServiceAccount, which RBAC gives nothing
    assert lines[1].startswith("secrets 403 ")
    assert f"system:serviceaccount:{k8s_namespace}:default" in lines[1]
