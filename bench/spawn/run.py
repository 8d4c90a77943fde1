"""Spawn-to-ready time on the Docker backend: dlhub against a bare JupyterHub + DockerSpawner.

    .venv/bin/python bench/spawn/run.py [--n 20] [--out bench/results/spawn.json]

Both hubs run at the same time on this host, each with its own network, on the same
user image, and spawns alternate between them so both see the same machine state.
Spawn-to-ready is measured from the spawn request (POST /hub/api/users/NAME/server)
until the server answers through the proxy (GET /user/NAME/api/status = 200); each
server is stopped before the next spawn. The baseline is JupyterHub's own
DockerSpawner with a plain config: nothing of dlhub in its path.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from machine import describe  # noqa: E402

from hub_config.docker_network import ensure_network  # noqa: E402
from hubtest import (  # noqa: E402
    RunningHub,
    free_port,
    stop_server,
    token_api,
    wait_for,
)

IMAGE = "dlhub/singleuser:0.1.0"

BASELINE_CONFIG = """
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://{gateway}:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{workdir}/proxy.pid"
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = "{image}"
c.DockerSpawner.network_name = "{network}"
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.prefix = "{prefix}"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "bench", "scopes": ["admin:users", "admin:servers",
    "access:servers"], "services": ["bench"]}}]
"""


class BaselineHub:
    """A bare JupyterHub + DockerSpawner, configured by hand."""

    def __init__(self, workdir: Path, network: str, prefix: str):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        gateway = ensure_network(network)
        self.config = workdir / "jupyterhub_config.py"
        self.config.write_text(
            BASELINE_CONFIG.format(
                port=self.port,
                gateway=gateway,
                hub_port=free_port(),
                api_port=free_port(),
                workdir=workdir,
                image=IMAGE,
                network=network,
                prefix=prefix,
                token=self.token,
            )
        )
        self.proc = None

    def start(self):
        env = dict(os.environ)
        env["PATH"] = f"{REPO / 'node_modules' / '.bin'}{os.pathsep}{env['PATH']}"
        log = open(self.workdir / "hub.log", "wb")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(self.config)],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200,
            60,
            what="the baseline hub",
        )
        token_api(self.url, self.token, "POST", "/hub/api/users/bench", json={})
        return self

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def spawn_to_ready(url: str, token: str, user: str) -> float:
    start = time.perf_counter()
    r = token_api(url, token, "POST", f"/hub/api/users/{user}/server", json={})
    if r.status_code not in (201, 202):
        raise RuntimeError(f"spawn refused: {r.status_code} {r.text}")

    def answers():
        return token_api(url, token, "GET", f"/user/{user}/api/status").status_code == 200

    wait_for(answers, 120, interval=0.05, what="the server through the proxy")
    elapsed = time.perf_counter() - start
    stop_server(url, token, user)
    return elapsed


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(p95, 3),
        "mean_s": round(statistics.fmean(ordered), 3),
        "samples_s": [round(s, 3) for s in samples],
    }


def machine() -> str:
    return f"{describe()}, Docker {docker.from_env().version()['Version']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="spawns per hub (default 20)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "spawn.json"))
    args = parser.parse_args()

    client = docker.from_env()
    client.images.get(IMAGE)  # fails loudly when `make images` has not run
    tag = uuid.uuid4().hex[:6]
    dl_prefix, base_prefix = f"bdl{tag}", f"bbase{tag}"
    networks = [f"bench-dlhub-{tag}", f"bench-base-{tag}"]
    with tempfile.TemporaryDirectory(prefix="dlhub-bench-") as tmp:
        dlhub = RunningHub(
            Path(tmp) / "dlhub",
            {
                "backend": "docker",
                "docker": {"image": IMAGE, "network": networks[0], "name_prefix": dl_prefix},
                "culling": {"enabled": False},
            },
        )
        (Path(tmp) / "base").mkdir()
        baseline = BaselineHub(Path(tmp) / "base", networks[1], base_prefix)
        try:
            dlhub.start()
            baseline.start()
            admin = dlhub.admin()
            dl_token = admin.new_token("bench")
            times = {"dlhub": [], "baseline": []}
            spawn_to_ready(dlhub.url, dl_token, "admin")  # warm-up, not counted
            spawn_to_ready(baseline.url, baseline.token, "bench")
            for i in range(args.n):
                times["dlhub"].append(spawn_to_ready(dlhub.url, dl_token, "admin"))
                times["baseline"].append(spawn_to_ready(baseline.url, baseline.token, "bench"))
                print(
                    f"spawn {i + 1}/{args.n}: dlhub {times['dlhub'][-1]:.2f}s, "
                    f"baseline {times['baseline'][-1]:.2f}s",
                    flush=True,
                )
        finally:
            dlhub.stop()
            baseline.stop()
            for c in client.containers.list(all=True, filters={"name": tag}):
                c.remove(force=True)
            for v in client.volumes.list(filters={"name": dl_prefix}):
                v.remove(force=True)
            for name in networks:
                for n in client.networks.list(names=[name]):
                    n.remove()
    result = {
        "n": args.n,
        "dlhub": summary(times["dlhub"]),
        "baseline": summary(times["baseline"]),
        "machine": machine(),
        "image": IMAGE,
        "method": "spawn request until GET /user/NAME/api/status answers 200 through the "
        "proxy; dlhub and the baseline alternate, one warm-up spawn each not counted",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    d, b = result["dlhub"], result["baseline"]
    print(f"dlhub    p50 {d['p50_s']:.2f}s  p95 {d['p95_s']:.2f}s")
    print(f"baseline p50 {b['p50_s']:.2f}s  p95 {b['p95_s']:.2f}s")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
