"""The rendered manifests: valid Kubernetes 1.30 objects, the components each case renders,
names, probes, volumes and the environment the hub side relies on."""

from __future__ import annotations

import pytest
from chartkit import (
    CASES,
    DNS_LABEL,
    NAMESPACE,
    PDB_API,
    RELEASE,
    containers,
    env_of,
    kinds,
    one,
    pod_specs,
)

pytestmark = pytest.mark.k8s

FULL = f"{RELEASE}-dlhub"


def service_url(service: str) -> str:
    """A Service's URL as the chart writes it: from the variables Kubernetes gives pods."""
    var = service.upper().replace("-", "_")
    return f"http://$({var}_SERVICE_HOST):$({var}_SERVICE_PORT)"


@pytest.mark.parametrize("case", CASES)
def test_every_document_validates_against_kubernetes_1_30(render_case, k8s_validate, case):
    docs = render_case(case)
    assert docs
    for doc in docs:
        k8s_validate(doc)


@pytest.mark.parametrize("case", CASES)
def test_names_are_dns_labels_and_labelled(render_case, case):
    for doc in render_case(case):
        meta = doc["metadata"]
        assert DNS_LABEL.match(meta["name"]), meta["name"]
        labels = meta["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/name"] == "dlhub"
        assert labels["app.kubernetes.io/component"]


def test_default_renders_hub_and_proxy_without_gpu_scheduler(render_case):
    docs = render_case("default")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert names == {
        ("Secret", f"{FULL}-secrets"),
        ("Secret", f"{FULL}-platform"),
        ("ServiceAccount", f"{FULL}-hub"),
        ("Role", f"{FULL}-hub"),
        ("RoleBinding", f"{FULL}-hub"),
        ("PersistentVolumeClaim", f"{FULL}-hub-db"),
        ("Service", f"{FULL}-hub"),
        ("Service", f"{FULL}-proxy-public"),
        ("Service", f"{FULL}-proxy-api"),
        ("Deployment", f"{FULL}-hub"),
        ("Deployment", f"{FULL}-proxy"),
        ("NetworkPolicy", f"{FULL}-hub"),
        ("NetworkPolicy", f"{FULL}-proxy"),
        ("NetworkPolicy", f"{FULL}-singleuser"),
    }


def test_gpu_case_adds_the_scheduler(render_case):
    docs = render_case("gpu")
    name = f"{FULL}-gpu-scheduler"
    for kind in ("Deployment", "Service", "ServiceAccount", "NetworkPolicy"):
        one(docs, kind, name)
    one(docs, "PersistentVolumeClaim", name)
    one(docs, "ClusterRole", f"{NAMESPACE}-{name}")
    one(docs, "ClusterRoleBinding", f"{NAMESPACE}-{name}")
    service = one(docs, "Service", name)
    assert service["spec"]["ports"][0]["port"] == 8095


def test_services_and_ports(render_case):
    docs = render_case("default")
    hub = one(docs, "Service", f"{FULL}-hub")
    assert [(p["port"], p["targetPort"]) for p in hub["spec"]["ports"]] == [(8081, "hub")]
    public = one(docs, "Service", f"{FULL}-proxy-public")
    assert public["spec"]["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in public["spec"]["ports"]] == [(80, "http")]
    api = one(docs, "Service", f"{FULL}-proxy-api")
    assert [p["port"] for p in api["spec"]["ports"]] == [8001]
    proxy = one(docs, "Deployment", f"{FULL}-proxy")["spec"]["template"]["spec"]
    ports = {p["name"]: p["containerPort"] for p in proxy["containers"][0]["ports"]}
    assert ports == {"http": 8000, "api": 8001}


def test_load_balancer_service(render_case):
    public = one(render_case("all"), "Service", "lab-proxy-public")
    assert public["spec"]["type"] == "LoadBalancer"
    assert public["spec"]["ports"][0]["port"] == 8080
    assert public["spec"]["ports"][0]["nodePort"] == 30080
    assert public["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]


def test_hub_deployment(render_case):
    hub = one(render_case("default"), "Deployment", f"{FULL}-hub")
    assert hub["spec"]["replicas"] == 1
    assert hub["spec"]["strategy"] == {"type": "Recreate"}
    spec = hub["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "dlhub/hub:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    # the image's own ENTRYPOINT (tini) and CMD (dlhub up)
    assert "command" not in container and "args" not in container
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/etc/dlhub/platform": "platform", "/srv/dlhub": "state"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["platform"]["secret"]["secretName"] == f"{FULL}-platform"
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == f"{FULL}-hub-db"
    assert container["readinessProbe"]["httpGet"]["path"] == "/hub/health"


def test_hub_environment_contract(render_case):
    def hub_env(case, prefix):
        spec = one(render_case(case), "Deployment", f"{prefix}-hub")["spec"]["template"]["spec"]
        return env_of(spec["containers"][0])

    env = hub_env("default", FULL)
    assert env["DLHUB_CONFIG"]["value"] == "/etc/dlhub/platform/dlhub.yaml"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # by the Services' ClusterIPs from the variables the kubelet gives pods (no DNS needed)
    assert env["DLHUB_HUB_CONNECT_URL"]["value"] == service_url(f"{FULL}-hub")
    assert env["DLHUB_PROXY_API_URL"]["value"] == service_url(f"{FULL}-proxy-api")
    secrets = {
        "CONFIGPROXY_AUTH_TOKEN": "proxy-token",
        "JPY_COOKIE_SECRET": "cookie-secret",
        "JUPYTERHUB_CRYPT_KEY": "crypt-key",
        "DLHUB_GPU_SHARED_SECRET": "gpu-shared-secret",
    }
    for name, key in secrets.items():
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": f"{FULL}-secrets", "key": key}, name
    assert "DLHUB_GPU_SCHEDULER_URL" not in env
    assert "DLHUB_GPU_SCHEDULER_TOKEN" not in env

    gpu = hub_env("gpu", FULL)
    assert gpu["DLHUB_GPU_SCHEDULER_URL"]["value"] == service_url(f"{FULL}-gpu-scheduler")
    ref = gpu["DLHUB_GPU_SCHEDULER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"{FULL}-secrets", "key": "gpu-scheduler-token"}

    full = hub_env("all", "lab")
    assert full["TZ"]["value"] == "Europe/Berlin"
    assert full["DLHUB_EXAMPLE_FLAG"]["value"] == "1"


def test_scheduler_shares_the_hubs_secrets(render_case):
    docs = render_case("gpu")
    spec = one(docs, "Deployment", f"{FULL}-gpu-scheduler")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["python", "-m", "gpu_scheduler"]
    env = env_of(container)
    assert env["JUPYTERHUB_API_URL"]["value"] == service_url(f"{FULL}-hub") + "/hub/api"
    assert env["JUPYTERHUB_SERVICE_URL"]["value"] == "http://0.0.0.0:8095"
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == "/services/gpu-scheduler/"
    assert env["DLHUB_GPU_DB_URL"]["value"] == "sqlite:////srv/dlhub/gpu-scheduler.sqlite"
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == (
        "gpu-scheduler-token"
    )
    assert env["DLHUB_GPU_SHARED_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == (
        "gpu-shared-secret"
    )


def test_base_path_and_postgres(render_case):
    """values-all: a base path in bind_url, Postgres for the hub and the scheduler."""
    docs = render_case("all")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("PersistentVolumeClaim", "lab-hub-db") not in names
    assert ("PersistentVolumeClaim", "lab-gpu-scheduler") not in names
    hub = one(docs, "Deployment", "lab-hub")["spec"]["template"]["spec"]
    assert {v["name"]: v for v in hub["volumes"]}["state"] == {"name": "state", "emptyDir": {}}
    assert hub["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/dl/hub/health"
    assert hub["containers"][0]["image"] == "registry.example.org/dlhub/hub:0.1.0"
    assert hub["imagePullSecrets"] == [{"name": "registry-credentials"}]
    proxy = one(docs, "Deployment", "lab-proxy")["spec"]["template"]["spec"]
    args = proxy["containers"][0]["args"]
    assert f"--default-target={service_url('lab-hub')}" in args
    assert f"--error-target={service_url('lab-hub')}/dl/hub/error" in args
    sched = one(docs, "Deployment", "lab-gpu-scheduler")["spec"]["template"]["spec"]
    env = env_of(sched["containers"][0])
    assert env["JUPYTERHUB_API_URL"]["value"] == service_url("lab-hub") + "/dl/hub/api"
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == "/dl/services/gpu-scheduler/"
    assert env["DLHUB_GPU_DB_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "lab-platform",
        "key": "gpu-db-url",
    }
    platform = one(docs, "Secret", "lab-platform")
    assert platform["stringData"]["gpu-db-url"].startswith("postgresql+psycopg://")


def test_pdbs_only_with_the_policy_v1_capability(render):
    without = render("values-all.yaml")
    assert not kinds(without, "PodDisruptionBudget")
    docs = render("values-all.yaml", api_versions=(PDB_API,))
    pdbs = {d["metadata"]["name"]: d["spec"] for d in kinds(docs, "PodDisruptionBudget")}
    assert set(pdbs) == {"lab-hub", "lab-proxy"}
    assert pdbs["lab-hub"]["minAvailable"] == 1
    assert pdbs["lab-proxy"]["maxUnavailable"] == 1
    hub_labels = pdbs["lab-hub"]["selector"]["matchLabels"]
    assert hub_labels["app.kubernetes.io/component"] == "hub"
    assert not kinds(render(api_versions=()), "PodDisruptionBudget")
    assert kinds(render(api_versions=(PDB_API,)), "PodDisruptionBudget")


def test_shared_storage_claims(render_case):
    docs = render_case("all")
    claims = {
        d["metadata"]["name"]: d
        for d in kinds(docs, "PersistentVolumeClaim")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "shared-storage"
    }
    assert set(claims) == {"lab-datasets", "lab-shared", "lab-group-ml-team", "lab-group-vision"}
    for claim in claims.values():
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
        assert claim["spec"]["storageClassName"] == "nfs-client"
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claims["lab-group-vision"]["spec"]["resources"]["requests"]["storage"] == "1Ti"
    assert not [
        d
        for d in kinds(render_case("default"), "PersistentVolumeClaim")
        if d["metadata"]["name"] != f"{FULL}-hub-db"
    ]


def test_ingress_with_tls(render_case):
    (ingress,) = kinds(render_case("all"), "Ingress")
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "dlhub-example-org-tls", "hosts": ["dlhub.example.org"]}]
    (rule,) = spec["rules"]
    assert rule["host"] == "dlhub.example.org"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "lab-proxy-public", "port": {"name": "http"}}
    assert not kinds(render_case("default"), "Ingress")


def test_tls_without_a_secret_name_is_refused(helm, tmp_path):
    from chartkit import helm_template

    file = tmp_path / "tls.yaml"
    file.write_text("ingress: {enabled: true, host: a.example.org, tls: {enabled: true}}\n")
    result = helm_template(helm, (file,))
    assert result.returncode != 0
    assert "ingress.tls.secretName" in result.stderr


@pytest.mark.parametrize("case", CASES)
def test_workloads_use_only_the_hub_image(render_case, case):
    for name, spec in pod_specs(render_case(case)):
        for container in containers(spec):
            assert "/dlhub/hub:" in container["image"] or container["image"].startswith(
                "dlhub/hub:"
            ), name
