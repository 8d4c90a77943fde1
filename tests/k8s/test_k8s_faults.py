"""Faults on Kubernetes: the chart installed on the real single-node cluster with users at
work, and parts of it deleted under them.

The release (tests/k8s/kubekit.py) runs the hub, the proxy and the GPU scheduler as pods;
node1 declares one ``nvidia.com/gpu`` (a PATCH of its status, as NVIDIA's device plugin
would) that the scheduler reads from the node. ``ana`` holds the GPU's lease (her server's
pod has the ``nvidia.com/gpu`` limit), ``ben`` runs a CPU server, ``quinn`` waits in the GPU
queue. Then, in this order:

1. the GPU scheduler's pod is deleted: its Deployment starts another, which answers with the
   same leases and the same queue (its SQLite database is on its claim);
2. the hub's pod is deleted: the user pods run on and every server answers through the proxy
   soon after the new hub is Ready; the lease survives. The old hub is held stopped
   (SIGSTOP) for a few seconds before the deletion takes effect, as a slow shutdown would
   hold it: the replacement pod starts meanwhile on the same volume and must wait for the
   old hub to exit before it opens the database (hub_config/single_hub.py); its log says
   "waiting for the previous hub to exit" and when it took the lock, which is compared with
   the old container's exit as Docker recorded it;
3. ``ana``'s pod is deleted outside the hub: the hub notices (KubeSpawner's poll), the
   lease is released within one scheduler check and goes to ``quinn``, whose server starts;
   ``ana`` starts again.

Each scenario records the times it took (``k8s_record``, printed in pytest's summary).
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import threading
import time
import types
from pathlib import Path

import docker
import pytest
import requests
from kubekit import (
    HUB_IMAGE,
    PRODUCT_LABEL,
    USER_IMAGE,
    installed_release,
    set_node_gpus,
    sign_in_admin,
)

from gputest import SchedulerClient
from hubtest import token_api, wait_for

pytestmark = pytest.mark.k8s

RELEASE = "faults"
HOLDER, RUNNING, QUEUED = "ana", "ben", "quinn"
USERS = [HOLDER, RUNNING, QUEUED]
CHECK_EVERY = 5  # the scheduler's check of leases against servers, in seconds
POLL = 2  # the hub's poll of each server, in seconds
PROFILES = [
    {"name": "cpu", "display_name": "CPU", "cpu_limit": 1, "mem_limit": "1G", "default": True},
    {"name": "gpu", "display_name": "One GPU", "cpu_limit": 1, "mem_limit": "1G", "gpus": 1},
]
VALUES = {
    "images": {"hub": {"pullPolicy": "Never"}},
    "platform": {
        "auth": {"admin_users": ["admin"]},
        "culling": {"enabled": False},
        "hub": {"poll_interval": POLL},
        "kubernetes": {
            "image": USER_IMAGE,
            "image_pull_policy": "IfNotPresent",
            "home_size": "1Gi",
        },
        "profiles": PROFILES,
        "gpus": {
            "enabled": True,
            "inventory": "kubernetes",
            "check_every": CHECK_EVERY,
            "max_wait": 3600,
        },
    },
    "hub": {"db": {"size": "1Gi"}},
    "gpuScheduler": {"db": {"size": "1Gi"}},
}
#: seconds the old hub is held stopped while its pod is being deleted
HELD_STOPPED = 6


class World:
    """The release with its users at work."""

    def __init__(self, release, admin_token: str):
        self.release = release
        self.admin_token = admin_token
        self.tokens: dict[str, str] = {}
        self.scheduler = SchedulerClient(types.SimpleNamespace(url=release.base))

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return token_api(self.release.base, self.admin_token, method, "/hub/api" + path, **kw)

    def server(self, user: str) -> dict | None:
        r = self.api("GET", f"/users/{user}")
        r.raise_for_status()
        return r.json()["servers"].get("")

    def reachable(self, user: str) -> bool:
        r = token_api(self.release.base, self.tokens[user], "GET", f"/user/{user}/api/status")
        return r.status_code == 200

    def all_reachable(self, users) -> bool:
        try:
            return all(self.reachable(u) for u in users)
        except requests.RequestException:
            return False

    def gpu_state(self) -> dict | None:
        """The leases ``(id, user, devices)`` and the queue ``(request id, user, place)``;
        None while the scheduler does not answer through the proxy."""
        try:
            r = self.scheduler.api(self.admin_token, "GET", "admin/state")
        except requests.RequestException:
            return None
        if r.status_code != 200:
            return None
        state = r.json()
        leases = sorted(
            (x["id"], x["user"], tuple(d["uuid"] for d in x["devices"])) for x in state["leases"]
        )
        waiting = sorted(state["waiting"], key=lambda x: x["position"])
        return {"leases": leases, "queue": [(x["id"], x["user"], x["position"]) for x in waiting]}

    def queue_gpu_start(self, user: str) -> None:
        r = token_api(
            self.release.base,
            self.tokens[user],
            "POST",
            f"/hub/api/users/{user}/server",
            json={"profile": "gpu"},
        )
        assert r.status_code == 202, r.text
        wait_for(
            lambda: (
                [(u, p) for _, u, p in (self.gpu_state() or {}).get("queue", [])] == [(user, 1)]
            ),
            30,
            what=f"{user} in the GPU queue",
        )

    def user_pod_uids(self) -> dict[str, str]:
        pods = self.release.pods(component="singleuser-server")
        return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}


@pytest.fixture(scope="module")
def one_gpu(kube_cluster):
    """node1 declares one `Tesla-T4`, for the module."""
    node = kube_cluster.node_name
    set_node_gpus(kube_cluster, 1)
    kube_cluster.kubectl("label", "node", node, f"{PRODUCT_LABEL}=Tesla-T4", "--overwrite")
    yield node
    kube_cluster.kubectl("label", "node", node, f"{PRODUCT_LABEL}-", check=False)
    set_node_gpus(kube_cluster, None)


@pytest.fixture(scope="module")
def world(kube_cluster, require_images, one_gpu, tmp_path_factory):
    require_images(HUB_IMAGE, USER_IMAGE)
    work = tmp_path_factory.mktemp("k8s-faults")
    with installed_release(kube_cluster, work, RELEASE, VALUES, USERS, "faults") as release:
        admin = sign_in_admin(release)
        w = World(release, admin.new_token("faults"))
        for user in USERS:
            r = w.api("POST", f"/users/{user}", json={})
            assert r.status_code == 201, r.text
            r = w.api("POST", f"/users/{user}/tokens", json={"note": "faults"})
            assert r.status_code == 201, r.text
            w.tokens[user] = r.json()["token"]
        release.start_server(HOLDER, w.tokens[HOLDER], {"profile": "gpu"})
        release.start_server(RUNNING, w.tokens[RUNNING], {"profile": "cpu"})
        w.queue_gpu_start(QUEUED)
        state = w.gpu_state()
        assert [user for _, user, _ in state["leases"]] == [HOLDER], state
        pod = release.pod(f"jupyter-{HOLDER}")
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "1", limits
        yield w


def only_pod(release, component: str) -> dict:
    pods = release.component_pods(component)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def new_ready_pod(release, component: str, old_uid: str) -> dict | None:
    """The component's pod other than ``old_uid`` once it is Ready (None before)."""
    for pod in release.component_pods(component):
        if pod["metadata"]["uid"] == old_uid or pod["metadata"].get("deletionTimestamp"):
            continue
        for condition in pod["status"].get("conditions", []):
            if condition["type"] == "Ready" and condition["status"] == "True":
                return pod
    return None


def container_of(pod: dict, name: str):
    """The Docker container of a pod's container (the kubelet's dockershim names them
    ``k8s_<container>_<pod>_...`` and labels them)."""
    engine = docker.from_env()
    labels = [
        f"io.kubernetes.pod.uid={pod['metadata']['uid']}",
        f"io.kubernetes.container.name={name}",
    ]
    (container,) = engine.containers.list(filters={"label": labels})
    return container


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def hub_process(container) -> int:
    """The host pid of the hub (``jupyterhub``) in its container (under tini)."""
    tini = container.attrs["State"]["Pid"]
    for pid in [tini, *children(tini)]:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"/jupyterhub " in cmdline or cmdline.startswith(b"jupyterhub "):
            return pid
    raise AssertionError(f"no jupyterhub process under pid {tini}")


def docker_time(value: str) -> datetime.datetime:
    """Docker's RFC 3339 time with nanoseconds, to microseconds."""
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z", value)
    assert match, value
    micro = (match.group(2) or "0")[:6].ljust(6, "0")
    return datetime.datetime.fromisoformat(f"{match.group(1)}.{micro}+00:00")


# --- the scenarios ----------------------------------------------------------------------------


def test_scheduler_pod_deleted_comes_back_with_its_leases_and_queue(world, k8s_record):
    scenario = "kubernetes: gpu-scheduler pod deleted"
    release = world.release
    before = world.gpu_state()
    assert [u for _, u, _ in before["leases"]] == [HOLDER]
    assert [u for _, u, _ in before["queue"]] == [QUEUED]
    old = only_pod(release, "gpu-scheduler")
    release.cluster.kubectl("delete", "pod", old["metadata"]["name"], "-n", release.namespace,
                            "--wait=false")  # fmt: skip
    deleted = time.monotonic()
    wait_for(lambda: new_ready_pod(release, "gpu-scheduler", old["metadata"]["uid"]), 180,
             interval=0.2, what="the scheduler's new pod to be Ready")  # fmt: skip
    k8s_record(scenario, "new scheduler pod Ready", time.monotonic() - deleted)
    wait_for(lambda: world.gpu_state() is not None, 60, interval=0.2,
             what="the scheduler to answer through the proxy")  # fmt: skip
    k8s_record(scenario, "scheduler answers through the proxy", time.monotonic() - deleted)
    assert world.gpu_state() == before
    # past a check of the new scheduler: nothing given back or dropped
    time.sleep(CHECK_EVERY + 1)
    assert world.gpu_state() == before
    assert world.all_reachable([HOLDER, RUNNING])


def test_hub_pod_deleted_servers_and_lease_survive_and_no_two_hubs_overlap(world, k8s_record):
    scenario = "kubernetes: hub pod deleted"
    release = world.release
    pods = world.user_pod_uids()
    assert sorted(pods) == [f"jupyter-{HOLDER}", f"jupyter-{RUNNING}"]
    gpus = world.gpu_state()
    old = only_pod(release, "hub")
    container = container_of(old, "hub")
    hub_pid = hub_process(container)
    exited = {}

    def watch():
        container.wait()
        container.reload()
        exited["at"] = docker_time(container.attrs["State"]["FinishedAt"])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # a slow shutdown: the old hub cannot act on the kubelet's SIGTERM for a while
    os.kill(hub_pid, signal.SIGSTOP)
    release.cluster.kubectl("delete", "pod", old["metadata"]["name"], "-n", release.namespace,
                            "--wait=false")  # fmt: skip
    deleted = time.monotonic()
    try:
        new = wait_for(lambda: [p for p in release.component_pods("hub")
                                if p["metadata"]["uid"] != old["metadata"]["uid"]
                                and p["status"].get("containerStatuses", [{}])[0]
                                .get("state", {}).get("running")], 60, interval=0.2,
                       what="the replacement hub's container running")  # fmt: skip
        started = time.monotonic() - deleted
        time.sleep(max(0.0, HELD_STOPPED - (time.monotonic() - deleted)))
    finally:
        os.kill(hub_pid, signal.SIGCONT)
    resumed = time.monotonic()
    (new,) = new
    ready = wait_for(lambda: new_ready_pod(release, "hub", old["metadata"]["uid"]), 180,
                     interval=0.2, what="the new hub pod Ready")  # fmt: skip
    assert ready["metadata"]["uid"] == new["metadata"]["uid"]
    up = time.monotonic()
    k8s_record(scenario, "replacement hub container running (old hub still there)", started)
    k8s_record(scenario, "new hub Ready after the old one was let go", up - resumed)
    watcher.join(60)
    assert "at" in exited, "the old hub's container did not exit"

    # the replacement waited for the old hub: its lock came after the old container's exit
    log = release.cluster.kubectl("logs", "-n", release.namespace, new["metadata"]["name"]).stdout
    assert "dlhub: waiting for the previous hub to exit" in log, log[:3000]
    taken = re.search(r"dlhub: hub lock taken at (\S+) .*waited ([\d.]+) s", log)
    assert taken, log[:3000]
    lock_at = datetime.datetime.fromisoformat(taken.group(1))
    first_lines = log[: taken.start()]
    assert "JupyterHub" not in first_lines and "sqlite" not in first_lines.lower(), first_lines
    # the kernel frees the lock when the hub process ends; tini, the container's first
    # process, ends right after it, and Docker records that: the lock may precede the
    # recorded exit by that step only
    gap = (lock_at - exited["at"]).total_seconds()
    k8s_record(scenario, "new hub waited for the old one", float(taken.group(2)))
    print(f"lock taken {gap:+.3f} s after the old container's recorded exit")
    assert gap > -0.5, (lock_at, exited["at"])
    assert float(taken.group(2)) >= 1.0

    # the servers ran on and answer through the proxy
    measure_from = time.monotonic()
    wait_for(lambda: world.all_reachable([HOLDER, RUNNING]), 60, interval=0.2,
             what="every server through the proxy")  # fmt: skip
    k8s_record(scenario, "every server reachable after the new hub is Ready",
               time.monotonic() - measure_from)  # fmt: skip
    assert world.user_pod_uids() == pods
    for user in (HOLDER, RUNNING):
        assert world.server(user)["ready"], user
    time.sleep(CHECK_EVERY + 1)  # past a check of the scheduler
    state = world.gpu_state()
    assert state["leases"] == gpus["leases"]  # none lost, doubled or leaked
    # a start waiting in the queue dies with the hub (JupyterHub keeps no pending spawn):
    # the scheduler drops it at its next check, and starting again queues the user again
    assert state["queue"] == [], state
    assert world.server(QUEUED) is None
    world.queue_gpu_start(QUEUED)


def test_user_pod_deleted_outside_the_hub_lease_goes_to_the_queue(world, k8s_record):
    scenario = "kubernetes: user pod deleted"
    release = world.release
    state = world.gpu_state()
    assert [u for _, u, _ in state["leases"]] == [HOLDER]
    assert [u for _, u, _ in state["queue"]] == [QUEUED]
    release.cluster.kubectl("delete", "pod", f"jupyter-{HOLDER}", "-n", release.namespace,
                            "--wait=false")  # fmt: skip
    deleted = time.monotonic()
    wait_for(lambda: world.server(HOLDER) is None, 60, interval=0.2,
             what="the hub to notice the server gone")  # fmt: skip
    noticed = time.monotonic()
    k8s_record(scenario, "hub noticed the server gone", noticed - deleted)

    def released():
        leases = (world.gpu_state() or {}).get("leases", [])
        return not any(user == HOLDER for _, user, _ in leases)

    wait_for(released, 60, interval=0.2, what="the lease given back")
    k8s_record(scenario, "lease released after the hub noticed", time.monotonic() - noticed)
    assert time.monotonic() - noticed <= CHECK_EVERY + 2
    # the waiting user gets it and her server starts
    wait_for(lambda: (world.server(QUEUED) or {}).get("ready"), 300, interval=0.5,
             what=f"{QUEUED}'s GPU server ready")  # fmt: skip
    k8s_record(scenario, "queued user's GPU server ready", time.monotonic() - deleted)
    state = world.gpu_state()
    assert [u for _, u, _ in state["leases"]] == [QUEUED] and state["queue"] == []
    assert world.reachable(QUEUED) and world.reachable(RUNNING)
    # the user whose pod went starts again
    again = time.monotonic()
    release.start_server(HOLDER, world.tokens[HOLDER], {"profile": "cpu"})
    k8s_record(scenario, "the user started again", time.monotonic() - again)
    assert world.reachable(HOLDER)
