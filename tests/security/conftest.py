"""The attack checklist (docs/security.md): one module per item, each against every
backend where it applies. Fixtures shared by the modules live here; each module starts
its own hub (module scope) with the config it needs.

- ``engine``: a Docker client once the engine answers and the user image exists (else a
  loud skip locally, a failure with ``CI`` set); one for the whole run.
- ``hubs``: :class:`securitykit.Hubs` of the module: start hubs on a backend; the docker
  objects of each go when the module ends.

Helpers (users, code run as a user, containers) are in ``securitykit``.
"""

from __future__ import annotations

import pytest
from securitykit import Hubs

from dockertest import USER_IMAGE
from hubtest import docker_engine_with


@pytest.fixture(scope="session")
def engine():
    return docker_engine_with(USER_IMAGE)


@pytest.fixture(scope="module")
def hubs(hub_factory, request):
    made = Hubs(hub_factory, request)
    yield made
    made.stop_all()
