"""What the GPU tests share: a hub config with GPU scheduling on declared GPUs, and a
client for the scheduler of a running test hub (:class:`hubtest.RunningHub`).

- :func:`gpu_hub_config`: the platform config of a hub whose scheduler leases ``count``
  declared GPUs (``GPU-0``, ``GPU-1``, ... of one model), on a free port of its own.
- :class:`SchedulerClient`: the scheduler's JSON API as users and admins reach it (through
  the hub's proxy, with a hub token) and as the hub itself calls it (on the scheduler's
  own port, with the secret the hub shares with it).
- :func:`lock_holder`, :func:`read_until`: a process holding the one-scheduler-per-database
  lock (``gpu_scheduler.single``), as a scheduler does, and reading what it says.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

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


# --- the host's real GPUs (tests marked ``gpu``) -------------------------------------------

#: a child process's view of the GPUs through the CUDA driver (ctypes, no framework): a
#: JSON list of the UUIDs of the devices it can use, or "no-libcuda"
CUDA_UUIDS = r"""
import ctypes, json
try:
    cuda = ctypes.CDLL("libcuda.so.1")
except OSError:
    print("no-libcuda")
    raise SystemExit
count, uuids = ctypes.c_int(0), []
if cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0:
    for i in range(count.value):
        device, raw = ctypes.c_int(0), ctypes.create_string_buffer(16)
        cuda.cuDeviceGet(ctypes.byref(device), i)
        cuda.cuDeviceGetUuid(raw, device)
        h = raw.raw.hex()
        uuids.append(f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
print(json.dumps(uuids))
"""

#: the same through PyTorch, where the interpreter has it: a JSON list or "no-torch"
TORCH_UUIDS = r"""
import json
try:
    import torch
except ImportError:
    print("no-torch")
    raise SystemExit
n = torch.cuda.device_count()
print(json.dumps(["GPU-" + str(torch.cuda.get_device_properties(i).uuid) for i in range(n)]))
"""


def host_has_gpu() -> bool:
    """An NVIDIA driver on this host (its device node or nvidia-smi)."""
    import os
    import shutil

    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


def devices_seen(env: dict, probe: str = CUDA_UUIDS) -> list[str] | None:
    """The GPU UUIDs a process started with ``env`` (a spawner's environment) can use,
    by the CUDA driver (``probe``: :data:`CUDA_UUIDS`) or PyTorch (:data:`TORCH_UUIDS`);
    None when that process has no CUDA driver or no PyTorch."""
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip().splitlines()[-1]
    return None if out in ("no-libcuda", "no-torch") else json.loads(out)


class RecordedNVML:
    """The pynvml calls of :func:`gpu_scheduler.inventory.from_nvml` and ``utilisation``
    answered from what a real driver answered (``tools/gpu_check.py record``, kept in
    tests/data/nvml-*.json): each answer, or the error the driver raised, by its code."""

    def __init__(self, recorded: dict):
        import pynvml

        self.pynvml = pynvml
        self.NVMLError = pynvml.NVMLError
        self.NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE
        self.cards = recorded["devices"]
        self.open = 0

    def _answer(self, card: dict, key: str):
        assert self.open > 0, "NVML used before nvmlInit"
        value = card[key]
        if isinstance(value, dict) and "error" in value:
            raise self.pynvml.NVMLError(value["error"]["code"])
        return value

    def nvmlInit(self):
        self.open += 1

    def nvmlShutdown(self):
        self.open -= 1

    def nvmlDeviceGetCount(self):
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.cards[index]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for card in self.cards:
            if card["uuid"] == uuid:
                return card
        raise self.pynvml.NVMLError(self.pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, card):
        return self._answer(card, "uuid")

    def nvmlDeviceGetName(self, card):
        return self._answer(card, "name")

    def nvmlDeviceGetMemoryInfo(self, card):
        from types import SimpleNamespace

        return SimpleNamespace(**self._answer(card, "memory"))

    def nvmlDeviceGetMigMode(self, card):
        return self._answer(card, "mig_mode")

    def nvmlDeviceGetMaxMigDeviceCount(self, card):
        return self._answer(card, "max_mig_device_count")

    def nvmlDeviceGetMigDeviceHandleByIndex(self, card, slot):
        slots = card.get("mig_devices", [])
        if slot >= len(slots):
            raise self.pynvml.NVMLError(self.pynvml.NVML_ERROR_NOT_FOUND)
        if "error" in slots[slot]:
            raise self.pynvml.NVMLError(slots[slot]["error"]["code"])
        return slots[slot]

    def nvmlDeviceGetUtilizationRates(self, card):
        from types import SimpleNamespace

        return SimpleNamespace(**self._answer(card, "utilization"))


#: a process that takes the one-scheduler-per-database lock of ``argv[1]`` as a scheduler
#: does (``argv[2]``: ``wait`` or ``stop`` when it is held), says ``held``, and keeps it
LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from gpu_scheduler import single
    single.hold(sys.argv[1], wait=sys.argv[2] == "wait", out=sys.stdout)
    print("held", flush=True)
    time.sleep(60)
    """
)


def lock_holder(url: str, wait: bool) -> subprocess.Popen:
    """A process taking the scheduler's lock on the database at ``url`` (waiting for it, or
    stopping, when another holds it); its output (stdout and stderr) is a text pipe."""
    return subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, url, "wait" if wait else "stop"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(child: subprocess.Popen, text: str, lines: list[str]) -> None:
    """Read ``child``'s lines into ``lines`` until one holds ``text``; AssertionError with
    what it said when it ends first."""
    for line in child.stdout:
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} never came: {lines}")
