"""What the GPU tests share: a hub config with GPU scheduling on declared GPUs, and a
client for the scheduler of a running test hub (:class:`hubtest.RunningHub`).

- :func:`gpu_hub_config`: the platform config of a hub whose scheduler leases ``count``
  declared GPUs (``GPU-0``, ``GPU-1``, ... of one model), on a free port of its own.
- :class:`SchedulerClient`: the scheduler's JSON API as users and admins reach it (through
  the hub's proxy, with a hub token) and as the hub itself calls it (on the scheduler's
  own port, with the secret the hub shares with it).
"""

from __future__ import annotations

import requests

from hubtest import free_port

#: where the hub serves the scheduler (its service prefix)
SCHEDULER = "/services/gpu-scheduler/"


def declared_gpus(count: int = 2, model: str = "A100") -> list[dict]:
    """``count`` declared GPUs of ``model``: GPU-0, GPU-1, ..."""
    return [{"uuid": f"GPU-{i}", "model": model} for i in range(count)]


def gpu_hub_config(profiles: list[dict], count: int = 2, **gpus) -> dict:
    """A platform config with GPU scheduling on ``count`` declared A100s and ``profiles``.

    ``gpus``: more keys of the ``gpus:`` section (``check_every``, ``quotas``,
    ``default_quota``, ``warn_before``, ``devices`` instead of the A100s, ...). Callers add
    the other sections they need (``culling``, ``hub``)."""
    section = {
        "enabled": True,
        "inventory": "declared",
        "devices": declared_gpus(count),
        "port": free_port(),
        **gpus,
    }
    return {"gpus": section, "profiles": profiles}


class SchedulerClient:
    """The GPU scheduler of ``hub`` (a :class:`hubtest.RunningHub`)."""

    def __init__(self, hub, timeout: float = 30):
        self.hub = hub
        self.timeout = timeout

    def api(self, token: str | None, method: str, path: str, **kw) -> requests.Response:
        """``path`` under the scheduler's ``api/`` through the hub's proxy, with a hub token
        (``None``: no token)."""
        headers = {"Authorization": f"token {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        url = f"{self.hub.url}{SCHEDULER}api/{path.lstrip('/')}"
        return requests.request(method, url, headers=headers, timeout=self.timeout, **kw)

    def state(self, admin_token: str) -> dict:
        """``api/admin/state``: every lease, the queue, the quotas, unleased servers."""
        r = self.api(admin_token, "GET", "admin/state")
        assert r.status_code == 200, r.text
        return r.json()

    def leases(self, admin_token: str) -> list[dict]:
        return self.state(admin_token)["leases"]

    @property
    def secret(self) -> str:
        """The secret the hub shares with its scheduler."""
        return (self.hub.data_dir / "gpu-scheduler-secret").read_text().strip()

    def as_hub(self, method: str, path: str, secret: str | None = None, **kw) -> requests.Response:
        """``path`` under the scheduler's ``api/hub/`` on its own port, as the hub calls it
        (``secret``: another secret than the hub's, to be refused)."""
        port = self.hub.config["gpus"]["port"]
        given = self.secret if secret is None else secret
        headers = {"Authorization": f"dlhub-hub {given}", **kw.pop("headers", {})}
        url = f"http://127.0.0.1:{port}{SCHEDULER}api/hub/{path.lstrip('/')}"
        return requests.request(method, url, headers=headers, timeout=self.timeout, **kw)

    def ask(self, user: str, **fields) -> requests.Response:
        """Ask for GPUs as the hub does for a spawn of ``user``'s server."""
        return self.as_hub("POST", "requests", json={"user": user, **fields})

    def give_back(self, user: str, server: str = "") -> requests.Response:
        """Release (or stop waiting for) the GPUs of ``user``'s server, as the hub does."""
        return self.as_hub("DELETE", f"servers/{user}/{server}")
