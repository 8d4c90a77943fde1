"""What the hub and the GPU scheduler agree on, written once: both sides import this module.

The scheduler owns its API, so the contract lives in its package; the hub
(:mod:`hub_config.gpu`, the Kubernetes spawner, the config mapping) imports it, and nothing
here imports the hub. ``tests/unit/test_contracts.py`` fails when either side drifts.

- **The hub's secret**: the hub's calls to ``api/hub/...`` carry ``Authorization:
  dlhub-hub <secret>`` (:func:`authorization`); both processes read the secret from the
  environment variable :data:`SECRET_ENV` (the hub on Kubernetes, where the chart sets it;
  the scheduler everywhere).
- **A request for GPUs**: the body of ``POST api/hub/requests`` has exactly the fields of
  :class:`HubRequest` (:data:`REQUEST_FIELDS`); the hub builds it with :meth:`HubRequest.body`
  and the scheduler reads it with :meth:`HubRequest.from_body`.
- **Device ids of the Kubernetes inventory**: ``<node>/<product>/<index>`` for a whole GPU,
  ``<node>/<product>/mig-<profile>/<index>`` for a MIG instance (:func:`device_id`); the hub
  places a server by them (:func:`parse_device`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

# --- the hub's secret ---------------------------------------------------------------------

#: The environment variable holding the secret the hub shares with the scheduler (the
#: chart's ``gpu-shared-secret``), on both sides.
SECRET_ENV = "DLHUB_GPU_SHARED_SECRET"

#: The scheme of the hub's ``Authorization`` header on ``api/hub/...``.
AUTH_SCHEME = "dlhub-hub"


def authorization(secret: str) -> str:
    """The ``Authorization`` header value of the hub's calls with ``secret``."""
    return f"{AUTH_SCHEME} {secret}"


# --- a request for GPUs -------------------------------------------------------------------


class ContractError(ValueError):
    """A request body breaks the contract; ``str()`` says which field and what is allowed."""


@dataclass(frozen=True)
class HubRequest:
    """``POST api/hub/requests``: the hub asks for GPUs on behalf of a user's spawn.

    The scheduler checks the numbers (:meth:`gpu_scheduler.policy.Scheduler.submit`); this
    class checks the shape (field names and types)."""

    #: the user whose server starts
    user: str
    #: the user's JupyterHub groups (their quotas)
    groups: tuple[str, ...] = ()
    #: the server's name ("" for the default server)
    server: str = ""
    #: how many GPUs
    count: int = 1
    #: the GPU model wanted; None: any
    model: str | None = None
    #: seconds without activity after which the lease may be reclaimed (0: never)
    idle_timeout: int = 0
    #: seconds after which the server is stopped however busy (0: no limit)
    max_lifetime: int = 0

    def body(self) -> dict:
        """The JSON object the hub sends."""
        data = asdict(self)
        data["groups"] = list(self.groups)
        return data

    @classmethod
    def from_body(cls, data: dict) -> HubRequest:
        """The request in a body the hub sent; :class:`ContractError` for unknown fields,
        a missing user or values of the wrong type."""
        unknown = sorted(set(data) - set(REQUEST_FIELDS))
        if unknown:
            raise ContractError(
                f"unknown field {unknown[0]!r}; allowed: {', '.join(REQUEST_FIELDS)}"
            )
        user = data.get("user")
        if not isinstance(user, str) or not user:
            raise ContractError("user must be a username")
        groups = data.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ContractError("groups must be a list of group names")
        server, model = data.get("server", ""), data.get("model")
        if not isinstance(server, str) or (model is not None and not isinstance(model, str)):
            raise ContractError("server and model must be strings")
        # the numbers are the policy's to check (whole, in range)
        numbers = {k: data[k] for k in ("count", "idle_timeout", "max_lifetime") if k in data}
        return cls(user=user, groups=tuple(groups), server=server, model=model, **numbers)


#: The fields of a hub request's body, in order.
REQUEST_FIELDS = tuple(f.name for f in fields(HubRequest))


# --- device ids of the Kubernetes inventory -----------------------------------------------

#: The extended resource of whole NVIDIA GPUs (the NVIDIA device plugin's).
GPU_RESOURCE = "nvidia.com/gpu"
#: The prefix of MIG instances' resources: ``nvidia.com/mig-<profile>``.
MIG_PREFIX = "nvidia.com/mig-"


class GpuDevice(NamedTuple):
    """A GPU as the Kubernetes inventory names it (:func:`device_id`)."""

    node: str
    #: the node's product label value ("" when the node has none)
    product: str
    #: the extended resource: ``nvidia.com/gpu`` or ``nvidia.com/mig-<profile>``
    resource: str
    index: int


def device_id(node: str, product: str, index: int, resource: str = GPU_RESOURCE) -> str:
    """The id of the ``index``-th ``resource`` of ``node``: ``<node>/<product>/<index>``
    for a whole GPU, ``<node>/<product>/mig-<profile>/<index>`` for a MIG instance."""
    if resource == GPU_RESOURCE:
        return f"{node}/{product}/{index}"
    if resource.startswith(MIG_PREFIX):
        return f"{node}/{product}/mig-{resource[len(MIG_PREFIX) :]}/{index}"
    raise ValueError(f"{resource!r} is not a GPU resource ({GPU_RESOURCE} or {MIG_PREFIX}*)")


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_device(uuid: str) -> GpuDevice:
    """Read a device id that :func:`device_id` made (``ValueError`` for any other)."""
    parts = uuid.split("/")
    if len(parts) == 3 and parts[0] and _is_index(parts[2]):
        return GpuDevice(parts[0], parts[1], GPU_RESOURCE, int(parts[2]))
    if len(parts) == 4 and parts[0] and parts[2].startswith("mig-") and _is_index(parts[3]):
        profile = parts[2][len("mig-") :]
        return GpuDevice(parts[0], parts[1], MIG_PREFIX + profile, int(parts[3]))
    raise ValueError(
        f"GPU {uuid!r} is not a Kubernetes device (<node>/<product>/<index>); "
        "set gpus.inventory: kubernetes"
    )
