"""Named servers (``servers.per_user``): the mapping, and the names each backend gives a
server (pure: no hub, no engine, no cluster)."""

import asyncio
import dataclasses
import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest

from hub_config import k8s_objects, mapping
from hub_config.cgroups import group_name as cgroup_name
from hub_config.config import ConfigError, validate
from hub_config.spawners import DEFAULT_CONTAINER, NAMED_CONTAINER


def traits(raw):
    return mapping.traits_for(validate(raw), Path("/srv/dlhub"), python="/env/bin/python")


def test_named_servers_are_off_by_default():
    hub = traits({})["JupyterHub"]
    assert hub["allow_named_servers"] is False
    assert hub["named_server_limit_per_user"] == 0


@pytest.mark.parametrize("backend", ["local", "docker"])
def test_per_user_allows_that_many_named_servers(backend):
    kw = {"docker_gateway": "172.30.0.1"} if backend == "docker" else {}
    t = mapping.traits_for(
        validate({"backend": backend, "servers": {"per_user": 3}}),
        Path("/srv/dlhub"),
        python="/env/bin/python",
        **kw,
    )
    assert t["JupyterHub"]["allow_named_servers"] is True
    assert t["JupyterHub"]["named_server_limit_per_user"] == 3


@pytest.mark.parametrize("value", [-1, 101, "2", 1.5])
def test_a_bad_per_user_stops_start_up_naming_the_key(value):
    with pytest.raises(ConfigError, match="servers.per_user"):
        validate({"servers": {"per_user": value}})


# --- docker: a container per server --------------------------------------------------


def orm(server: str):
    """What a spawner reads its server name from (JupyterHub's ORM spawner)."""
    return SimpleNamespace(name=server, server=None)


def docker_name(user: str, server: str, prefix: str = "dlhub") -> str:
    """The container name DockerSpawner renders for ``user``'s ``server`` with dlhub's
    templates and escape (its ``template_namespace``: the server name is lower-cased,
    then escaped)."""
    from hub_config.naming import safe_slug

    template = NAMED_CONTAINER if server else DEFAULT_CONTAINER
    return template.format(
        prefix=prefix, username=safe_slug(user), servername=safe_slug(server.lower())
    )


def test_the_default_server_keeps_its_container_name():
    assert docker_name("alice", "") == "dlhub-alice"
    assert docker_name("alice", "train") == "dlhub-alice--train"


#: users and server names that look alike once escaped or shortened (server names follow
#: JupyterHub 6's rule; usernames dlhub's and longer ones made by admins)
USERS = ["a", "a-b", "a_b", "a.b", "a-2db", "a--b", "ab", "x" * 32, "x" * 49, "x" * 60 + "-y"]
SERVERS = ["", "b", "a-b", "b-2d", "2db", "x" * 30, "x" * 29 + "y", "b-c-d"]


def test_container_names_never_collide():
    seen = {}
    for user, server in itertools.product(USERS, SERVERS):
        if server and not server[0].isalpha():
            continue  # JupyterHub refuses such a server name
        name = docker_name(user, server)
        assert name not in seen, f"{(user, server)} and {seen[name]} share {name}"
        seen[name] = (user, server)
    # a-b and a_b are two users with two containers each
    assert docker_name("a-b", "b") != docker_name("a_b", "b")
    assert docker_name("a", "b-c") != docker_name("a-b", "c")


def test_the_spawner_picks_the_template_by_server(kubeconfig):
    from traitlets.config import Config

    from hub_config.spawners import DockerSpawner

    user = SimpleNamespace(name="a-b", id=1, url="/user/a-b/", groups=[])
    c = Config()
    c.DockerSpawner.prefix = "dlhub"
    default = DockerSpawner(user=user, config=c, orm_spawner=orm(""))
    named = DockerSpawner(user=user, config=c, orm_spawner=orm("train-2"))
    assert default.object_name == "dlhub-a-2db"
    assert named.object_name == "dlhub-a-2db--train-2d2"
    # one home volume for both
    home = {"{prefix}-home-{username}": "/home/jovyan"}
    assert default._render_templates(home) == named._render_templates(home)


# --- local: a process and a cgroup per server ------------------------------------------


def test_each_local_server_gets_a_cgroup_of_its_own():
    assert cgroup_name("dlhub-alice", "") == "dlhub-alice"
    assert cgroup_name("dlhub-alice", "train") == "dlhub-alice.train"
    names = {cgroup_name(a, s) for a in ("dlhub-a", "dlhub-a-b") for s in ("", "b", "a-b")}
    assert len(names) == 6


# --- kubernetes: a pod per server, one home claim per user ---------------------------


def test_kubernetes_pods_per_server_and_one_home_claim_per_user(kubeconfig):
    from traitlets.config import Config

    from hub_config.kubernetes import KubernetesSpawner

    c = Config()
    c.KubernetesSpawner.pod_name_template = k8s_objects.POD_NAME_TEMPLATE
    c.KubernetesSpawner.pvc_name_template = k8s_objects.PVC_NAME_TEMPLATE
    user = SimpleNamespace(name="alice", id=1, url="/user/alice/", groups=[])

    async def names(server):
        spawner = KubernetesSpawner(_mock=True, user=user, config=c, orm_spawner=orm(server))
        await spawner.api.api_client.close()  # nothing was sent
        return spawner.pod_name, spawner.pvc_name, spawner.secret_name

    (default_pod, default_home, default_token), (named_pod, named_home, named_token) = map(
        asyncio.run, map(names, ["", "train"])
    )
    assert (default_pod, named_pod) == ("jupyter-alice", "jupyter-alice--train")
    assert default_home == named_home == "home-alice"
    # the server's token Secret is named after its pod: one per server
    assert default_token != named_token and "train" in named_token


# --- the GPU scheduler: a lease per server ---------------------------------------------


def two_gpus():
    from gpu_scheduler.model import Device

    return [Device("GPU-0", "A100", index=0), Device("GPU-1", "A100", index=1)]


def ask(user: str, server: str, at: float = 0.0):
    from gpu_scheduler.model import Request

    return Request(id=f"{user}:{server}", user=user, server=server, count=1, submitted_at=at)


def test_each_server_of_a_user_holds_its_own_lease_and_gives_back_only_its_own():
    from gpu_scheduler.policy import RequestError, Scheduler

    s = Scheduler(two_gpus(), default_quota=2)
    s.submit(ask("alice", ""), 0)
    s.submit(ask("alice", "train"), 1)
    assert {lease.request.server: lease.devices for lease in s.leases.values()} == {
        "": ("GPU-0",),
        "train": ("GPU-1",),
    }
    # one lease per server: the same server cannot ask twice
    again = dataclasses.replace(ask("alice", "train", 2), id="again")
    with pytest.raises(RequestError, match="server 'train' of alice holds GPUs"):
        s.validate(again)
    s.release("alice:train", 3)
    assert [(x.user, x.request.server) for x in s.leases.values()] == [("alice", "")]
    assert s.held_by("alice") == 1
    s.check()


def test_the_quota_counts_the_gpus_of_all_of_a_users_servers():
    from gpu_scheduler.policy import Scheduler

    s = Scheduler(two_gpus(), default_quota=1)
    s.submit(ask("alice", ""), 0)
    step = s.submit(ask("alice", "train"), 1)
    # beyond her quota: it borrows the idle GPU, the first taken back
    assert [lease.borrowed for lease in step.granted] == [True]


def test_leases_per_server_survive_a_restart(tmp_path):
    from gpu_scheduler.policy import Scheduler
    from gpu_scheduler.store import Store

    store = Store(f"sqlite:///{tmp_path / 'gpu.sqlite'}")
    s = Scheduler(two_gpus(), default_quota=2)
    s.submit(ask("alice", ""), 0)
    s.submit(ask("alice", "train"), 1)
    store.save(s)
    again = Scheduler(two_gpus(), default_quota=2)
    store.load(again)
    assert sorted((x.user, x.request.server, x.devices) for x in again.leases.values()) == [
        ("alice", "", ("GPU-0",)),
        ("alice", "train", ("GPU-1",)),
    ]


def test_the_hub_asks_for_gpus_for_the_server_by_name():
    from gpu_scheduler.contract import HubRequest

    body = HubRequest(user="alice", server="train").body()
    assert body["server"] == "train"
    assert HubRequest.from_body(body).server == "train"
