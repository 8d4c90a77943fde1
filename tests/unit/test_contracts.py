"""What the hub and the GPU scheduler must agree on is defined once
(:mod:`gpu_scheduler.contract`, group names in hub_config/schema.yaml); these tests fail
when either side drifts from it:

- the body the hub sends for GPUs has exactly the contract's fields, and the scheduler
  (its real API on a loopback port) accepts exactly them and reads every one;
- the Kubernetes inventory's device ids are what the hub's placement reads, for any node;
- the secret's environment name: the hub-managed scheduler service gets the hub's secret
  under it, the hub on Kubernetes reads it, the scheduler checks the hub's calls with it
  (the chart's side: tests/chart/test_chart_contracts.py, which renders the chart);
- the roster's group-name check accepts exactly the names the platform config schema does.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyterhub.services.auth import HubAuth
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from gpu_scheduler import contract
from gpu_scheduler.contract import (
    REQUEST_FIELDS,
    SECRET_ENV,
    ContractError,
    HubRequest,
    authorization,
    device_id,
    parse_device,
)
from gpu_scheduler.inventory import devices_from_nodes
from gpu_scheduler.model import Device
from gpu_scheduler.policy import Scheduler
from gpu_scheduler.service import State, make_app
from hub_config import mapping, roster
from hub_config.config import ConfigError, schema, validate
from hub_config.gpu import GpuMixin
from hub_config.k8s_objects import gpu_placement

PREFIX = "/services/gpu-scheduler/"
LABEL = "nvidia.com/gpu.product"


# --- the request for GPUs -----------------------------------------------------------------


def spawn(profile: dict, server: str = "big"):
    """What ``GpuMixin.gpu_request`` reads of a spawner: its user, name and profile."""
    user = SimpleNamespace(name="alice", groups=[SimpleNamespace(name="ml")])
    return SimpleNamespace(user=user, name=server, profile=profile)


PROFILE = {"name": "a100", "gpus": 1, "gpu_idle_timeout": 60, "max_lifetime": 3600}


def test_the_hubs_request_has_exactly_the_contracts_fields():
    body = GpuMixin.gpu_request(spawn(PROFILE), 1).body()
    assert list(body) == list(REQUEST_FIELDS)
    assert body == {
        "user": "alice",
        "groups": ["ml"],
        "server": "big",
        "count": 1,
        "model": None,
        "idle_timeout": 60,
        "max_lifetime": 3600,
    }
    # what goes over the wire comes back the same
    assert HubRequest.from_body(json.loads(json.dumps(body))) == GpuMixin.gpu_request(
        spawn(PROFILE), 1
    )


def test_the_contract_refuses_any_other_field_and_a_missing_user():
    body = GpuMixin.gpu_request(spawn(PROFILE), 1).body()
    with pytest.raises(ContractError, match="unknown field 'priority'; allowed: user, groups"):
        HubRequest.from_body({**body, "priority": 9})
    without_user = {k: v for k, v in body.items() if k != "user"}
    with pytest.raises(ContractError, match="user must be a username"):
        HubRequest.from_body(without_user)
    with pytest.raises(ContractError, match="groups must be a list"):
        HubRequest.from_body({**body, "groups": "ml"})


def serve(scenario, monkeypatch, secret="contract-secret"):
    """Run ``scenario(post, state)`` against the scheduler's real API, its secret in
    :data:`SECRET_ENV` (``post(body, secret)`` answers (status, JSON))."""
    monkeypatch.setenv(SECRET_ENV, secret)
    devices = [Device(f"GPU-{i}", "A100", 40960, i) for i in range(2)]
    state = State(Scheduler(devices, quotas={"ml": 2}, default_quota=1), None)

    async def main():
        sock, port = bind_unused_port()
        hub_auth = HubAuth(api_token="unused", api_url="http://127.0.0.1:1/hub/api")
        server = HTTPServer(make_app(state, PREFIX, hub_auth))
        server.add_sockets([sock])

        async def post(body, given=secret):
            request = HTTPRequest(
                f"http://127.0.0.1:{port}{PREFIX}api/hub/requests",
                method="POST",
                headers={"Authorization": authorization(given)},
                body=json.dumps(body),
            )
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
            return response.code, json.loads(response.body)

        try:
            await scenario(post, state)
        finally:
            server.stop()
            await server.close_all_connections()

    asyncio.run(main())


def test_the_scheduler_accepts_exactly_the_hubs_request_and_reads_every_field(monkeypatch):
    asked = GpuMixin.gpu_request(spawn({**PROFILE, "model": "ignored"}), 2)
    body = {**asked.body(), "model": "A100"}

    async def scenario(post, state):
        # one field beyond the contract: refused, naming the contract's fields
        code, answer = await post({**body, "gpus": 1})
        allowed = ", ".join(REQUEST_FIELDS)
        assert (code, answer["message"]) == (400, f"unknown field 'gpus'; allowed: {allowed}")
        code, answer = await post({**body, "user": ""})
        assert (code, answer["message"]) == (400, "user must be a username")
        code, answer = await post(body, "another secret")
        assert code == 403
        assert state.scheduler.leases == {}
        code, answer = await post(body)
        assert code == 201, answer
        (lease,) = state.scheduler.leases.values()
        # every field of the contract reached the scheduler's request
        got = lease.request
        assert (got.user, got.groups, got.server, got.count, got.model) == (
            "alice",
            ("ml",),
            "big",
            2,
            "A100",
        )
        assert (got.idle_timeout, got.max_lifetime) == (60, 3600)
        assert answer["lease"]["server"] == "big"

    serve(scenario, monkeypatch)


# --- device ids ---------------------------------------------------------------------------

dns_label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
node_names = st.builds(".".join, st.lists(dns_label, min_size=1, max_size=3))
#: label values: empty, or alphanumerics with '-', '_', '.' inside
products = st.one_of(
    st.just(""), st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?\Z")
)
mig_profiles = st.from_regex(r"\A[1-7]g\.[0-9]{1,3}gb\Z")


@st.composite
def gpu_nodes(draw):
    """Node objects as the API has them: whole GPUs and MIG instances, labelled or not."""
    names = draw(st.lists(node_names, min_size=1, max_size=4, unique=True))
    nodes = []
    for name in names:
        allocatable = {"cpu": "8", contract.GPU_RESOURCE: str(draw(st.integers(0, 8)))}
        for profile in draw(st.lists(mig_profiles, max_size=2, unique=True)):
            allocatable[contract.MIG_PREFIX + profile] = str(draw(st.integers(0, 7)))
        labels = {LABEL: draw(products)}
        if not labels[LABEL] and draw(st.booleans()):
            labels = {}
        nodes.append(
            {"metadata": {"name": name, "labels": labels}, "status": {"allocatable": allocatable}}
        )
    return nodes


@settings(max_examples=200, deadline=None)
@given(gpu_nodes())
def test_the_inventorys_device_ids_are_what_the_hub_places_by(nodes):
    devices = devices_from_nodes(nodes, LABEL)
    by_name = {n["metadata"]["name"]: n for n in nodes}
    counts = Counter()
    for device in devices:
        parsed = parse_device(device.uuid)
        node = by_name[parsed.node]
        assert parsed.product == node["metadata"]["labels"].get(LABEL, "")
        assert device_id(parsed.node, parsed.product, parsed.index, parsed.resource) == device.uuid
        counts[parsed.node, parsed.resource] += 1
        # the hub puts the server on that node, asking for that resource
        selector, limits = gpu_placement([device.uuid], LABEL)
        assert selector["kubernetes.io/hostname"] == parsed.node
        assert limits == {parsed.resource: "1"}
    # every GPU the nodes advertise is one device, and nothing else is
    advertised = {
        (name, resource): int(count)
        for name, node in by_name.items()
        for resource, count in node["status"]["allocatable"].items()
        if resource != "cpu" and int(count)
    }
    assert dict(counts) == advertised


def test_ids_that_are_no_device_are_refused():
    for bad in ("GPU-5c6e2a1b-0000", "n1/T4", "/T4/0", "n1/T4/x", "n1/T4/mig-1g.5gb/x", "n1/T4/٣"):
        with pytest.raises(ValueError, match="inventory: kubernetes"):
            parse_device(bad)
    with pytest.raises(ValueError, match="not a GPU resource"):
        device_id("n1", "T4", 0, "example.com/fpga")


# --- the secret's environment name ----------------------------------------------------------


def test_the_hub_managed_scheduler_gets_the_hubs_secret_under_the_contracts_name():
    cfg = validate({"gpus": {"enabled": True, "devices": [{"uuid": "GPU-0", "model": "T4"}]}})
    t = mapping.traits_for(cfg, Path("/srv/dlhub"), python=sys.executable, gpu_secret="s3cret")
    (service,) = [s for s in t["JupyterHub"]["services"] if s["name"] == "gpu-scheduler"]
    assert service["environment"][SECRET_ENV] == t["GpuMixin"]["gpu_secret"] == "s3cret"


def test_the_hub_on_kubernetes_reads_the_secret_under_the_contracts_name():
    cfg = validate({"backend": "kubernetes", "gpus": {"enabled": True, "inventory": "kubernetes"}})
    environ = {
        "DLHUB_RELEASE": "lab",
        "DLHUB_HUB_CONNECT_URL": "http://lab-dlhub-hub:8081",
        "DLHUB_GPU_SCHEDULER_URL": "http://lab-dlhub-gpu-scheduler:8095",
        "DLHUB_GPU_SCHEDULER_TOKEN": "scheduler-token",
        SECRET_ENV: "from-the-chart",
    }
    t = mapping.traits_for(cfg, Path("/srv/dlhub"), python=sys.executable, environ=environ)
    assert t["GpuMixin"]["gpu_secret"] == "from-the-chart"
    with pytest.raises(ValueError, match=SECRET_ENV):
        mapping.traits_for(
            cfg,
            Path("/srv/dlhub"),
            python=sys.executable,
            environ={k: v for k, v in environ.items() if k != SECRET_ENV},
        )


def test_the_scheduler_checks_the_hub_with_the_secret_under_the_contracts_name(monkeypatch):
    body = GpuMixin.gpu_request(spawn(PROFILE), 1).body()

    async def scenario(post, state):
        code, answer = await post(body, "the-secret")
        assert code == 201, answer
        code, answer = await post(body, "")
        assert (code, answer["message"]) == (403, "only the hub may use this endpoint")

    serve(scenario, monkeypatch, secret="the-secret")


# --- group names ----------------------------------------------------------------------------


def group_patterns(node) -> list[str]:
    """Every ``pattern`` in the schema whose ``x-allowed`` says it is a group name."""
    found = []
    if isinstance(node, dict):
        if str(node.get("x-allowed", "")).startswith("a group name"):
            found.append(node["pattern"])
        for value in node.values():
            found += group_patterns(value)
    elif isinstance(node, list):
        for value in node:
            found += group_patterns(value)
    return found


def test_one_group_name_pattern_in_the_schema_and_the_roster_uses_it():
    patterns = group_patterns(schema())
    assert len(patterns) >= 2  # profiles[].groups[] and volumes.groups[].group
    assert set(patterns) == {roster.GROUP_RE.pattern}


def schema_accepts_group(name: str) -> bool:
    raw = {
        "profiles": [{"name": "team", "default": True, "groups": [name]}],
        "volumes": {"groups": [{"group": name}]},
    }
    try:
        validate(raw)
    except ConfigError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,70}\Z"),
        st.text(alphabet=st.sampled_from("aZ09._- /\n\tÅé,;:"), max_size=70),
        st.text(max_size=10),
    )
)
def test_the_roster_and_the_schema_agree_on_group_names(name):
    assert (roster.group_problem(name) is None) == schema_accepts_group(name)
