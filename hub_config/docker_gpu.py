"""GPUs on the docker backend: whether this host's Docker engine can give containers GPUs.

Docker hands GPUs to a container through its NVIDIA device driver (the NVIDIA Container
Toolkit). Without it every GPU start fails inside the engine; dlhub says so in words: at
start-up a warning when the engine lists no ``nvidia`` runtime while a profile asks for
GPUs, and at a spawn the message :data:`NO_NVIDIA_RUNTIME` instead of the engine's error.
"""

from __future__ import annotations

#: what a user (and the hub's log) is told when a GPU server cannot start on this host
NO_NVIDIA_RUNTIME = (
    "This host's Docker engine has no NVIDIA runtime, so no server can get GPUs here: "
    "start a profile without GPUs, or ask an admin to install the NVIDIA Container "
    "Toolkit on the host (nvidia-ctk runtime configure --runtime=docker)."
)

#: the Docker engine's answer when a container asks for GPUs it cannot give
ENGINE_ERROR = 'could not select device driver "nvidia"'


def missing_runtime(error: Exception) -> bool:
    """Whether a Docker API error says the engine has no NVIDIA device driver."""
    return ENGINE_ERROR in str(getattr(error, "explanation", None) or error)


def startup_warning(cfg: dict, runtimes) -> str | None:
    """The operator's one-line warning when GPU profiles cannot start on this engine.

    ``runtimes``: the names the engine lists (``docker info``, ``Runtimes``). None when
    nothing asks for GPUs, or the engine has the NVIDIA runtime."""
    if cfg["backend"] != "docker" or not cfg["gpus"]["enabled"]:
        return None
    wanting = [p["name"] for p in cfg["profiles"] if p.get("gpus")]
    if not wanting or "nvidia" in set(runtimes):
        return None
    return (
        f"dlhub: warning: the GPU profiles ({', '.join(wanting)}) cannot start: this host's "
        "Docker engine lists no NVIDIA runtime (docker info); install the NVIDIA Container "
        "Toolkit and run `nvidia-ctk runtime configure --runtime=docker`, then restart Docker."
    )


def engine_runtimes(client=None) -> set[str]:
    """The runtimes the Docker engine lists (I/O)."""
    import docker

    client = client or docker.from_env()
    return set(client.info().get("Runtimes") or {})
