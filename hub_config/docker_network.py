"""The Docker network user containers join (I/O: talks to the Docker engine)."""

from __future__ import annotations

import docker

#: Containers on the network cannot reach each other; on the host they reach only what
#: :mod:`hub_config.host_firewall` lets through (the hub's API, the GPU scheduler).
NETWORK_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}


class DockerUnavailable(RuntimeError):
    """The Docker engine cannot be reached."""


def ensure_network(name: str, client=None) -> str:
    """Create the bridge network ``name`` when missing; return its gateway address."""
    try:
        client = client or docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        raise DockerUnavailable(
            f"the docker backend needs a running Docker engine ({e}); start one with `make engine`"
        ) from None
    found = client.networks.list(names=[name])
    network = next((n for n in found if n.name == name), None)
    if network is None:
        network = client.networks.create(
            name, driver="bridge", options=NETWORK_OPTIONS, labels={"org.dlhub": "network"}
        )
        network.reload()
    for pool in network.attrs["IPAM"]["Config"] or []:
        if pool.get("Gateway"):
            return pool["Gateway"]
    raise DockerUnavailable(f"Docker network {name!r} has no gateway address")


def bridge_name(name: str, client=None) -> str:
    """The host's network interface of the bridge network ``name``."""
    client = client or docker.from_env()
    network = client.networks.get(name)
    options = network.attrs.get("Options") or {}
    return options.get("com.docker.network.bridge.name") or f"br-{network.id[:12]}"
