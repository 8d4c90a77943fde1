"""Security properties of the rendered manifests: pod and container security contexts,
service-account tokens, RBAC, NetworkPolicies and the generated secrets."""

from __future__ import annotations

import base64
import re

import pytest
from chartkit import CASES, NAMESPACE, RELEASE, containers, kinds, one, pod_specs

pytestmark = pytest.mark.k8s

FULL = f"{RELEASE}-dlhub"
USER_PODS = {"component": "singleuser-server"}


@pytest.mark.parametrize("case", CASES)
def test_every_pod_runs_as_uid_1000_without_privileges(render_case, case):
    specs = pod_specs(render_case(case))
    assert specs
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] == 1000, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        for container in containers(spec):
            ctx = container["securityContext"]
            assert ctx["runAsNonRoot"] is True, (name, container["name"])
            assert ctx["runAsUser"] == 1000, (name, container["name"])
            assert ctx["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert ctx["capabilities"] == {"drop": ["ALL"]}, (name, container["name"])
            assert not ctx.get("privileged"), (name, container["name"])


@pytest.mark.parametrize("case", CASES)
def test_only_hub_and_scheduler_get_api_tokens(render_case, case):
    for name, spec in pod_specs(render_case(case)):
        wants_token = name.endswith(("-hub", "-gpu-scheduler"))
        assert spec["automountServiceAccountToken"] is wants_token, name
        if wants_token:
            assert spec["serviceAccountName"] == name
        else:
            assert "serviceAccountName" not in spec, name


def _rules(role):
    return sorted(
        (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"])))
        for r in role["rules"]
    )


def test_hub_role_is_exactly_what_kubespawner_needs(render_case):
    docs = render_case("default")
    role = one(docs, "Role", f"{FULL}-hub")
    assert _rules(role) == sorted(
        [
            (("",), ("pods",), ("create", "delete", "get", "list", "watch")),
            (("",), ("persistentvolumeclaims",), ("create", "delete", "get", "list")),
            (("",), ("events",), ("get", "list", "watch")),
            # a server's token Secret: made and deleted, never read back
            (("",), ("secrets",), ("create", "delete")),
        ]
    )
    binding = one(docs, "RoleBinding", f"{FULL}-hub")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": f"{FULL}-hub",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{FULL}-hub", "namespace": NAMESPACE}
    ]
    assert not kinds(docs, "ClusterRole") and not kinds(docs, "ClusterRoleBinding")


@pytest.mark.parametrize("case", ["gpu", "all"])
def test_the_only_cluster_role_is_the_schedulers_read_only_one(render_case, case):
    docs = render_case(case)
    (role,) = kinds(docs, "ClusterRole")
    # nodes only: pod specs carry users' environments
    assert _rules(role) == [(("",), ("nodes",), ("get", "list", "watch"))]
    (binding,) = kinds(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (subject,) = binding["subjects"]
    assert subject["name"].endswith("-gpu-scheduler")
    assert subject["namespace"] == NAMESPACE
    # the hub's Role is the same whatever else is enabled
    (hub_role,) = kinds(docs, "Role")
    assert {r for rule in hub_role["rules"] for r in rule["resources"]} == {
        "pods",
        "persistentvolumeclaims",
        "events",
        "secrets",
    }


def _netpol(docs, suffix):
    (policy,) = [d for d in kinds(docs, "NetworkPolicy") if d["metadata"]["name"].endswith(suffix)]
    return policy["spec"]


def _selects_user_pods(peer):
    return peer.get("podSelector", {}).get("matchLabels") == USER_PODS or (
        "podSelector" in peer and not peer["podSelector"]
    )


@pytest.mark.parametrize("case", CASES)
def test_user_pods_accept_only_hub_and_proxy(render_case, case):
    spec = _netpol(render_case(case), "-singleuser")
    assert spec["podSelector"] == {"matchLabels": USER_PODS}
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    for rule in spec["ingress"]:
        assert rule.get("from"), f"an ingress rule open to everyone: {rule}"
        components = set()
        for peer in rule["from"]:
            assert not _selects_user_pods(peer), f"user pods admitted from user pods: {rule}"
            assert "ipBlock" not in peer and "namespaceSelector" not in peer, rule
            labels = peer["podSelector"]["matchLabels"]
            assert labels["app.kubernetes.io/instance"] == RELEASE
            components.add(labels["app.kubernetes.io/component"])
        assert components <= {"hub", "proxy"}
        assert [p["port"] for p in rule["ports"]] == [8888]


@pytest.mark.parametrize("case", CASES)
def test_user_pods_never_reach_the_metadata_service_or_private_ranges(render_case, case):
    spec = _netpol(render_case(case), "-singleuser")
    for rule in spec["egress"]:
        for peer in rule.get("to", []):
            assert not _selects_user_pods(peer), f"user pods may reach user pods: {rule}"
            block = peer.get("ipBlock")
            if block and block["cidr"] == "0.0.0.0/0":
                assert "169.254.169.254/32" in block["except"]
                for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
                    assert private in block["except"]
        if not rule.get("to"):
            # a rule without destinations may only open DNS
            assert {(p["port"], p["protocol"]) for p in rule["ports"]} == {
                (53, "UDP"),
                (53, "TCP"),
            }


def test_user_internet_switch(render_case):
    def internet(spec):
        return [
            peer
            for rule in spec["egress"]
            for peer in rule.get("to", [])
            if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
        ]

    assert len(internet(_netpol(render_case("default"), "-singleuser"))) == 1
    # values-all: allowInternet false, one extra rule to a single internal address
    spec = _netpol(render_case("all"), "-singleuser")
    assert not internet(spec)
    assert {"ipBlock": {"cidr": "10.30.0.10/32"}} in [
        p for r in spec["egress"] for p in r.get("to", [])
    ]


def test_proxy_api_only_from_the_hub(render_case):
    spec = _netpol(render_case("default"), "-proxy")
    by_port = {rule["ports"][0]["port"]: rule for rule in spec["ingress"]}
    assert set(by_port) == {"http", "api"}
    assert "from" not in by_port["http"], "the public port is open to all"
    (peer,) = by_port["api"]["from"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hub"


def test_hub_accepts_proxy_scheduler_and_user_pods(render_case):
    spec = _netpol(render_case("gpu"), "-hub")
    (rule,) = spec["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["hub"]
    peers = [p["podSelector"]["matchLabels"] for p in rule["from"]]
    components = {p.get("app.kubernetes.io/component") for p in peers}
    assert components == {"proxy", "gpu-scheduler", None}
    assert USER_PODS in peers
    egress_ports = {p["port"] for r in spec["egress"] for p in r["ports"]}
    assert egress_ports == {443, 6443, 8001, 8888, 8095, 53}


def test_hub_and_scheduler_reach_their_postgres(render_case):
    docs = render_case("all")
    hub_ports = {p["port"] for r in _netpol(docs, "-hub")["egress"] for p in r["ports"]}
    assert 5433 in hub_ports and 636 in hub_ports
    sched = _netpol(docs, "-gpu-scheduler")
    assert 5432 in {p["port"] for r in sched["egress"] for p in r["ports"]}


def test_scheduler_only_from_hub_and_proxy(render_case):
    spec = _netpol(render_case("gpu"), "-gpu-scheduler")
    (rule,) = spec["ingress"]
    components = {
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]
    }
    assert components == {"hub", "proxy"}


def test_generated_secrets(render_case):
    secret = one(render_case("default"), "Secret", f"{FULL}-secrets")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(data) == {
        "proxy-token",
        "cookie-secret",
        "crypt-key",
        "gpu-shared-secret",
        "gpu-scheduler-token",
    }
    for key in ("cookie-secret", "crypt-key"):
        assert re.fullmatch(r"[0-9a-f]{64}", data[key]), key  # 32 bytes, hex
    for key in ("proxy-token", "gpu-shared-secret", "gpu-scheduler-token"):
        assert re.fullmatch(r"[A-Za-z0-9]{64}", data[key]), key
    assert len(set(data.values())) == len(data)
