"""The docker backend's objects in tests, one home for tests/e2e and tests/security: the
user image, a name prefix and network per hub, the platform config's ``docker`` section
for them, and the container and network a hub made."""

from __future__ import annotations

import uuid

from hub_config.naming import safe_slug

#: the user image every docker-backend test spawns
USER_IMAGE = "dlhub/singleuser:0.1.0"


def docker_names(prefix: str, network: str) -> dict[str, str]:
    """A fresh name prefix and network for one hub: ``{"prefix": "<prefix><tag>",
    "network": "<network>-<tag>"}`` with a random tag, so runs side by side never meet."""
    tag = uuid.uuid4().hex[:6]
    return {"prefix": f"{prefix}{tag}", "network": f"{network}-{tag}"}


def docker_section(names: dict[str, str], image: str = USER_IMAGE) -> dict:
    """The platform config's ``docker`` section of a hub using ``names``."""
    return {"image": image, "network": names["network"], "name_prefix": names["prefix"]}


def user_container(engine, names: dict[str, str], user: str):
    """The container of ``user``'s default server on a hub using ``names``."""
    return engine.containers.get(f"{names['prefix']}-{safe_slug(user)}")


def network_gateway(engine, network: str) -> str:
    """The gateway of the Docker network ``network`` (where containers reach the host)."""
    return engine.networks.get(network).attrs["IPAM"]["Config"][0]["Gateway"]
