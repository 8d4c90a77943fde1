"""Checklist item 6: what a spawn may ask for is decided on the server.

bob forges spawn requests through the REST API and the spawn form: an image, resource
limits, a GPU count, environment, volumes, a command, a profile hidden from him, odd
profile values, another user's lease. Each is refused with a 4xx JSON message (the form
shows the message) and nothing starts; on docker no container is made. A form post with
extra fields starts exactly the chosen profile. With alice holding a GPU lease, bob can
neither release, reclaim nor read it. On local and docker (the GPU leases on local: a GPU
container cannot start on a host without the NVIDIA runtime; the scheduler is the same).
"""

from __future__ import annotations

import pytest
from securitykit import BACKENDS, container, create_users

from hubtest import free_port, run_ok, start_server, stop_server, token_api, wait_for

pytestmark = pytest.mark.integration

SCHEDULER = "/services/gpu-scheduler/"
PROFILES = [
    {"name": "cpu", "default": True, "mem_limit": "1G", "cpu_limit": 1},
    {"name": "gpu", "gpus": 1, "mem_limit": "1G"},
    {"name": "staff-only", "groups": ["staff"], "mem_limit": "2G"},
]


@pytest.fixture(scope="module", params=BACKENDS)
def hub(request, hubs):
    config = {
        "gpus": {
            "enabled": True,
            "devices": [{"uuid": "GPU-0", "model": "A100"}, {"uuid": "GPU-1", "model": "A100"}],
            "port": free_port(),
        },
        "profiles": PROFILES,
    }
    hub = hubs.start(request.param, config, name="forged")
    yield hub
    hubs.stop(hub)


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def admin_token(admin):
    return admin.new_token("forged")


@pytest.fixture(scope="module")
def bob(hub, admin):
    return hub.approved_user(admin, "bob")


@pytest.fixture(scope="module")
def bob_token(bob):
    return bob.new_token("forged")


FORGED_OPTIONS = [
    ({"image": "busybox:latest"}, "unknown option 'image'"),
    ({"profile": "cpu", "image": "busybox:latest"}, "unknown option 'image'"),
    ({"profile": "cpu", "mem_limit": "100G"}, "unknown option 'mem_limit'"),
    ({"profile": "cpu", "cpu_limit": 64}, "unknown option 'cpu_limit'"),
    ({"profile": "gpu", "gpus": 2}, "unknown option 'gpus'"),
    ({"profile": "gpu", "count": 2}, "unknown option 'count'"),
    ({"profile": "gpu", "lease": "any"}, "unknown option 'lease'"),
    ({"profile": "gpu", "devices": ["GPU-0", "GPU-1"]}, "unknown option 'devices'"),
    ({"profile": "cpu", "environment": {"LD_PRELOAD": "/x"}}, "unknown option 'environment'"),
    ({"profile": "cpu", "volumes": {"/": "/host"}}, "unknown option 'volumes'"),
    ({"profile": "cpu", "cmd": ["sh"]}, "unknown option 'cmd'"),
    ({"profile": "staff-only"}, "unknown profile 'staff-only'"),
    ({"profile": "../cpu"}, "unknown profile '../cpu'"),
    ({"profile": ["cpu", "gpu"]}, "unknown profile"),
    ({"profile": {"name": "gpu", "gpus": 2}}, "unknown profile"),
    ({"profile": None}, "unknown profile"),
]


def no_server(hub, admin_token, user, request) -> None:
    model = token_api(hub.url, admin_token, "GET", f"/hub/api/users/{user}").json()
    assert "" not in model["servers"], model["servers"]
    if hub.backend == "docker":
        engine = request.getfixturevalue("engine")
        made = engine.containers.list(all=True, filters={"name": f"{hub.names['prefix']}-"})
        assert [c.name for c in made if c.name.endswith(f"-{user}")] == []


@pytest.mark.parametrize("options, says", FORGED_OPTIONS, ids=lambda x: str(x)[:40])
def test_forged_spawn_options_are_refused(hub, bob_token, admin_token, request, options, says):
    r = token_api(hub.url, bob_token, "POST", "/hub/api/users/bob/server", json=options)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json")
    assert says in r.json()["message"], r.json()
    no_server(hub, admin_token, "bob", request)


def test_named_servers_cannot_be_made(hub, bob_token, admin_token, request):
    r = token_api(hub.url, bob_token, "POST", "/hub/api/users/bob/servers/extra", json={})
    assert 400 <= r.status_code < 500, r.status_code
    model = token_api(hub.url, admin_token, "GET", "/hub/api/users/bob").json()
    assert model["servers"] == {}


@pytest.mark.parametrize(
    "form, says",
    [
        ({"profile": "staff-only"}, "unknown profile"),
        ({"profile": "nonexistent"}, "unknown profile"),
    ],
)
def test_forged_spawn_form_is_refused(hub, bob, admin_token, request, form, says):
    r = bob.post_form("/hub/spawn", form)
    assert says in r.text, r.text[:500]
    no_server(hub, admin_token, "bob", request)


def test_extra_form_fields_are_ignored(hub, bob, bob_token, request):
    """Only ``profile`` is read from the form: the server gets the profile's limits."""
    r = bob.post_form(
        "/hub/spawn",
        {"profile": "cpu", "image": "busybox:latest", "mem_limit": "100G", "gpus": "2"},
    )
    assert r.status_code == 200

    def ready():
        model = token_api(hub.url, bob_token, "GET", "/hub/api/users/bob").json()
        return model["servers"].get("", {}).get("ready")

    wait_for(ready, 120, what="bob's server from the form")
    try:
        out = run_ok(
            hub.url,
            bob_token,
            "bob",
            "import os; print(os.environ['DLHUB_PROFILE'], os.environ['MEM_LIMIT'], "
            "repr(os.environ.get('CUDA_VISIBLE_DEVICES')))",
        )
        assert out == f"cpu {1024**3} ''", out
        if hub.backend == "docker":
            c = container(request.getfixturevalue("engine"), hub, "bob")
            assert c.image.tags == ["dlhub/singleuser:0.1.0"]
            assert c.attrs["HostConfig"]["Memory"] == 1024**3
            assert not c.attrs["HostConfig"].get("DeviceRequests")
    finally:
        stop_server(hub.url, bob_token, "bob")


@pytest.fixture(scope="module")
def alice_lease(hub, admin_token):
    """alice's GPU server and its lease (local: declared GPUs)."""
    if hub.backend == "docker":
        pytest.skip("a GPU container cannot start without the NVIDIA runtime (see module doc)")
    token = create_users(hub, admin_token, "alice")["alice"]
    start_server(hub.url, token, "alice", options={"profile": "gpu"})
    (lease,) = token_api(hub.url, admin_token, "GET", SCHEDULER + "api/admin/state").json()[
        "leases"
    ]
    assert lease["user"] == "alice"
    yield lease
    stop_server(hub.url, token, "alice")


def test_another_users_lease_cannot_be_touched(hub, bob_token, admin_token, alice_lease):
    lease_id = alice_lease["id"]
    attempts = [
        ("DELETE", "api/requests/"),  # bob's own (none): never alice's
        ("DELETE", "api/requests/alice"),
        ("POST", f"api/admin/leases/{lease_id}/reclaim"),
        ("GET", f"api/hub/requests/{lease_id}"),
        ("DELETE", "api/hub/servers/alice/"),
        ("POST", "api/requests"),
    ]
    for method, path in attempts:
        r = token_api(
            hub.url, bob_token, method, SCHEDULER + path, json={"server": "", "count": 2}
        )
        assert r.status_code in (403, 404), (method, path, r.status_code, r.text[:200])
    # the spawn API does not take a lease either
    r = token_api(
        hub.url, bob_token, "POST", "/hub/api/users/bob/server", json={"lease": lease_id}
    )
    assert r.status_code == 400
    state = token_api(hub.url, admin_token, "GET", SCHEDULER + "api/admin/state").json()
    assert [(x["id"], x["user"]) for x in state["leases"]] == [(lease_id, "alice")]
    me = token_api(hub.url, bob_token, "GET", SCHEDULER + "api/me").json()
    assert me == {"leases": [], "waiting": []}


def test_a_gpu_server_gets_exactly_its_profiles_count(hub, bob, bob_token, alice_lease):
    """A form post asking for 2 GPUs gets the profile's 1, not alice's."""
    r = bob.post_form("/hub/spawn", {"profile": "gpu", "gpus": "2"})
    assert r.status_code == 200

    def ready():
        model = token_api(hub.url, bob_token, "GET", "/hub/api/users/bob").json()
        return model["servers"].get("", {}).get("ready")

    wait_for(ready, 120, what="bob's GPU server")
    try:
        devices = run_ok(
            hub.url, bob_token, "bob", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
        )
        assert devices.split(",") == [
            d for d in ("GPU-0", "GPU-1") if d not in alice_lease_devices(alice_lease)
        ]
    finally:
        stop_server(hub.url, bob_token, "bob")


def alice_lease_devices(lease) -> list[str]:
    return [d["uuid"] for d in lease["devices"]]
