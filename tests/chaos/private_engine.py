"""A second Docker engine, private to one test, that the test may stop and start.

Other suites use the machine's engine at the same time; restarting that one would break
their running tests. :class:`PrivateEngine` runs another ``dockerd`` beside it, sharing
nothing with it: its own data root (kept between runs in ``.docker-engine/chaos-engine``
so the user image is loaded once), exec root, pid file and socket, a default bridge of
its own (``dlhubce0``: a dockerd given ``--bridge=none`` deletes the machine's
``docker0``, which the other engine and the test cluster need), no iptables rules of its
own (those chains are the machine engine's). No ``--default-address-pool``: dockerd 20.10
given one deletes ``docker0`` at every start that finds its previous default bridge
network, whatever ``--bridge`` says; its user networks take subnets that no interface of
this machine uses. The user image is copied into it with
``docker save | docker load`` when missing.

Its ``PATH`` holds a no-op ``nvidia-container-runtime-hook``: the engine registers its
NVIDIA device driver when that program exists, so a GPU server's container (a device
request for the lease's GPU ids) starts here; the container sees no GPU, there being
none on this host. That lets a server hold a GPU lease on the docker backend while the
engine restarts under it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from hubtest import REPO, part_missing

DOCKERD = "/usr/sbin/dockerd"
#: where its images and volumes stay between runs (ignored by git with .docker-engine/)
DATA = REPO / ".docker-engine" / "chaos-engine"
#: its default bridge, made here before it starts and removed when it is closed
BRIDGE = "dlhubce0"
BRIDGE_ADDRESS = "10.214.0.1/24"
HOOK = "#!/bin/sh\n# no-op NVIDIA prestart hook for a host without GPUs (tests only)\nexit 0\n"


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def make_bridge() -> None:
    """The private engine's default bridge, unless it is there already."""
    if link_exists(BRIDGE):
        return
    for command in (
        ["ip", "link", "add", BRIDGE, "type", "bridge"],
        ["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE],
        ["ip", "link", "set", BRIDGE, "up"],
    ):
        subprocess.run(command, check=True, capture_output=True)


class PrivateEngine:
    """``start()``, ``stop()``, ``restart()``; :attr:`host` is its ``DOCKER_HOST``."""

    def __init__(self, data: Path = DATA):
        if not Path(DOCKERD).exists():
            part_missing("no dockerd (run `make engine`)")
        self.data = data
        # a short exec root: containerd's sockets live under it (108 bytes at most)
        self.exec_root = Path(f"/tmp/dlhub-ce-{os.getpid()}")
        self.socket = data / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.pidfile = data / "dockerd.pid"
        self.log = data / "dockerd.log"
        self.proc: subprocess.Popen | None = None

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.host, timeout=120)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:
            return False

    def start(self, timeout: float = 60) -> PrivateEngine:
        """Start the engine and wait until it answers."""
        bindir = self.data / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        hook = bindir / "nvidia-container-runtime-hook"
        hook.write_text(HOOK)
        hook.chmod(0o755)
        config = self.data / "daemon.json"
        config.write_text("{}\n")
        self.exec_root.mkdir(exist_ok=True)
        make_bridge()
        docker0 = link_exists("docker0")
        env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
        env.pop("DOCKER_HOST", None)
        command = [
            DOCKERD,
            f"--config-file={config}",
            f"--data-root={self.data / 'root'}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--host={self.host}",
            f"--bridge={BRIDGE}",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"the private dockerd did not start:\n{tail}")
            time.sleep(0.2)
        if docker0 and not link_exists("docker0"):
            raise RuntimeError(
                "the private dockerd deleted the machine engine's docker0; see its flags"
            )
        return self

    def stop(self, timeout: float = 60) -> None:
        """Stop the engine as an operator's ``systemctl stop docker`` does (SIGTERM; it
        stops its containers first)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        """Stop the engine and remove its exec root (its data root stays for next time)."""
        self.stop()
        shutil.rmtree(self.exec_root, ignore_errors=True)
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)

    def restart(self) -> float:
        """Stop and start the engine; seconds it was away."""
        began = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - began

    def load(self, image: str) -> None:
        """Copy ``image`` from the machine's engine into this one, unless it has the same."""
        import docker

        wanted = docker.from_env().images.get(image).id
        try:
            if self.client().images.get(image).id == wanted:
                return
        except docker.errors.ImageNotFound:
            pass
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        env = {**os.environ, "DOCKER_HOST": self.host}
        subprocess.run(["docker", "load", "-q"], stdin=save.stdout, env=env, check=True)
        save.stdout.close()
        if save.wait() != 0:
            raise RuntimeError(f"docker save {image} failed")

    def prune(self) -> None:
        """Remove every container, user network and volume a run left behind (an
        interrupted one); the images stay."""
        client = self.client()
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.networks.prune()
        client.volumes.prune()

    def remove_containers(self, prefix: str, network: str) -> None:
        """Remove the containers and volumes named ``prefix...`` and ``network``."""
        client = self.client()
        for container in client.containers.list(all=True, filters={"name": prefix}):
            container.remove(force=True)
        for volume in client.volumes.list(filters={"name": prefix}):
            volume.remove(force=True)
        for net in client.networks.list(names=[network]):
            net.remove()
