"""The hub image starts a working hub (as uid 1000, under tini) from a mounted config."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.images

CONFIG = """
backend: local
hub:
  bind_url: http://0.0.0.0:8000
culling:
  enabled: false
"""


# uid and command line of every process in the container, one per line
PS = """
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    if pid == str(os.getpid()):
        continue
    try:
        status = open(f"/proc/{pid}/status").read()
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    uid = status.split("Uid:")[1].split()[0]
    print(uid, cmdline.replace(b"\\0", b" ").decode().strip())
"""


class TestHubImage:
    IMAGE = "dlhub/hub"
    IMAGE_ENV = "DLHUB_HUB_IMAGE"
    BUILD_WITH = "make images"

    def test_hub_answers_and_runs_unprivileged(self, built_image, tmp_path):
        config = tmp_path / "dlhub.yaml"
        config.write_text(CONFIG)
        config.chmod(0o644)
        name = f"dlhub-hub-test-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [
                "docker", "run", "-d", "--name", name,
                "-v", f"{config}:/etc/dlhub/dlhub.yaml:ro",
                "-e", "DLHUB_CONFIG=/etc/dlhub/dlhub.yaml",
                built_image,
            ],
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            ip = json.loads(
                subprocess.run(
                    ["docker", "inspect", name], check=True, capture_output=True, text=True
                ).stdout
            )[0]["NetworkSettings"]["IPAddress"]
            deadline, version = time.monotonic() + 60, None
            while time.monotonic() < deadline and version is None:
                try:
                    version = requests.get(f"http://{ip}:8000/hub/api/", timeout=2).json()
                except (requests.RequestException, ValueError):
                    time.sleep(0.5)
            logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            assert version == {"version": "6.1.1"}, logs.stdout + logs.stderr
            ps = subprocess.run(
                ["docker", "exec", name, "python3", "-c", PS], capture_output=True, text=True
            ).stdout
            processes = [line.split(" ", 1) for line in ps.splitlines()]
            # every process (tini, the hub, the proxy) runs as uid 1000, none as root
            assert {uid for uid, _ in processes} == {"1000"}, ps
            commands = " | ".join(args for _, args in processes)
            assert "tini" in commands and "jupyterhub" in commands, ps
            assert "configurable-http-proxy" in commands, ps
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
