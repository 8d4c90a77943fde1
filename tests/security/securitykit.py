"""Helpers of the attack checklist's modules (tests/security): hubs on each backend, users
with tokens, and the user containers of the docker backend."""

from __future__ import annotations

import pytest

import hubtest
from dockertest import docker_names, docker_section, network_gateway, user_container
from hub_config.host_firewall import forget_removed_networks
from hubtest import RunningHub, _merge, remove_docker_objects, token_api

#: the backends a module runs against: local always, docker where the engine and image are
BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


class Hubs:
    """Start hubs on a backend; on the docker backend each hub gets its own network and
    name prefix (``hub.names``), and its containers, volumes and network go with it."""

    def __init__(self, hub_factory, request):
        self.hub_factory = hub_factory
        self.request = request
        self.started: list[RunningHub] = []

    def start(self, backend: str, config: dict | None = None, name: str = "hub") -> RunningHub:
        config = dict(config or {})
        names = None
        if backend == "docker":
            self.request.getfixturevalue("engine")  # the engine and the image, or part_missing
            names = docker_names("dls", "dlhub-sec")
            config = _merge({"backend": "docker", "docker": docker_section(names)}, config)
        config.setdefault("culling", {"enabled": False})
        hub = self.hub_factory(config, name=f"{name}-{backend}")
        hub.backend, hub.names = backend, names
        self.started.append(hub)
        return hub

    def stop(self, hub: RunningHub) -> None:
        hub.stop()
        if hub.names:
            engine = self.request.getfixturevalue("engine")
            remove_docker_objects(engine, hub.names["prefix"], hub.names["network"])
            forget_removed_networks()  # the host's rules of the network that is gone

    def stop_all(self) -> None:
        for hub in self.started:
            self.stop(hub)


def create_users(hub: RunningHub, admin_token: str, *names: str) -> dict[str, str]:
    """Create users through the admin API; return a token of each (no password, no form)."""
    tokens = {}
    for name in names:
        r = token_api(hub.url, admin_token, "POST", f"/hub/api/users/{name}", json={})
        assert r.status_code in (201, 409), r.text
        r = token_api(
            hub.url, admin_token, "POST", f"/hub/api/users/{name}/tokens", json={"note": "sec"}
        )
        assert r.status_code == 201, r.text
        tokens[name] = r.json()["token"]
    return tokens


def run_ok(hub: RunningHub, token: str, user: str, code: str) -> str:
    """:func:`hubtest.run_ok` on ``hub``: ``code`` run in ``user``'s kernel, its stdout."""
    return hubtest.run_ok(hub.url, token, user, code)


def container(engine, hub: RunningHub, user: str):
    """The docker backend's container of ``user``'s default server."""
    return user_container(engine, hub.names, user)


def gateway(engine, hub: RunningHub) -> str:
    """The gateway of the hub's user network (where containers reach the host)."""
    return network_gateway(engine, hub.names["network"])


#: Python run in a user's kernel: reach(host, port) -> "open" / "closed";
#: get(url, headers) -> HTTP status (or "closed")
NET_PROBE = """
import socket, urllib.request, urllib.error
def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except OSError:
        return "closed"
def get(url, headers=None, method="GET"):
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        return urllib.request.urlopen(request, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return "closed"
"""
