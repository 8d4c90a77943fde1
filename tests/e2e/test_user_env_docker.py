"""A user's server on the docker backend, as its user sees it: /dev/shm of the profile's
size for data loaders with workers, memory and CPU against the profile's limits (the
metrics endpoint and JupyterLab's status bar, screenshot for docs/getting-started.md),
a package installed in a notebook still there after a restart."""

from __future__ import annotations

import base64
import re

import pytest

import wheeltest
from browsertest import log_in, sign_up
from dockertest import docker_section
from hubtest import new_password, run_code, run_ok, start_server, stop_server, token_api

pytestmark = pytest.mark.docker

#: the name prefix and network of this module's hub (tests/e2e/conftest.py: names)
DOCKER_NAMES = ("dlue", "dlhub-test-ue")

MiB = 1024**2

PROFILES = [
    # /dev/shm: half of mem_limit by default, 512 MiB here
    {"name": "standard", "cpu_limit": 1, "mem_limit": "1G", "default": True},
]


@pytest.fixture(scope="module")
def hub(names, hub_factory):
    config = {
        "backend": "docker",
        "docker": docker_section(names),
        "profiles": PROFILES,
        "culling": {"enabled": False},
    }
    hub = hub_factory(config, name="docker-user-env")
    yield hub
    hub.stop()  # before `names` removes the containers, volumes and network


@pytest.fixture(scope="module")
def admin(hub):
    return hub.admin()


@pytest.fixture(scope="module")
def dora(hub, admin):
    """dora's token, her server running."""
    token = hub.approved_user(admin, "dora").new_token("user env tests")
    start_server(hub.url, token, "dora")
    return token


SHM_WORKERS = """
import subprocess
import numpy as np
from multiprocessing import get_context, shared_memory

SIZE = 256 * 1024**2
block = shared_memory.SharedMemory(create=True, size=SIZE)
N = SIZE // 8

def fill(i):
    # a worker, as a data loader's: writes its quarter of the block in /dev/shm
    mine = shared_memory.SharedMemory(name=block.name)
    a = np.ndarray((N,), dtype=np.float64, buffer=mine.buf)
    a[i * N // 4:(i + 1) * N // 4] = i + 1
    del a
    mine.close()
    return i

with get_context("fork").Pool(4) as pool:
    print("WORKERS", sorted(pool.map(fill, range(4))))
a = np.ndarray((N,), dtype=np.float64, buffer=block.buf)
print("SUM", int(a.sum()), "EXPECTED", (N // 4) * 10)
del a
block.close()
block.unlink()
print("DF", subprocess.run(["df", "-B1", "--output=size", "/dev/shm"],
                           capture_output=True, text=True).stdout.split()[-1])
"""


def test_dev_shm_holds_a_256_mib_block_written_by_worker_processes(hub, dora):
    out = run_code(hub.url, dora, "dora", SHM_WORKERS, timeout=300)
    assert out["status"] == "ok", out
    said = {line.split()[0]: line.split()[1:] for line in out["stdout"].splitlines()}
    assert said["WORKERS"] == ["[0,", "1,", "2,", "3]"]
    assert said["SUM"][0] == said["SUM"][2]
    assert int(said["DF"][0]) == 512 * MiB  # half the profile's 1G


def test_metrics_report_memory_and_cpu_against_the_profiles_limits(hub, dora):
    r = token_api(hub.url, dora, "GET", "/user/dora/api/metrics/v1")
    assert r.status_code == 200, r.text
    metrics = r.json()
    assert metrics["rss"] > 10 * MiB
    assert metrics["limits"]["memory"]["rss"] == 1024 * MiB
    assert metrics["limits"]["cpu"]["cpu"] == 1.0
    assert "cpu_percent" in metrics
    # a CPU-only server lists no GPU (and the endpoint answers)
    r = token_api(hub.url, dora, "GET", "/user/dora/dlhub/gpu-usage")
    assert r.status_code == 200, r.text
    assert r.json() == {"gpus": []}


def test_a_package_installed_in_a_notebook_is_there_after_a_restart(hub, dora, tmp_path):
    wheel = wheeltest.make_wheel(tmp_path, "doras_pkg", "1.0", "WHO = 'dora'\n")
    r = token_api(
        hub.url,
        dora,
        "PUT",
        f"/user/dora/api/contents/{wheel.name}",
        json={
            "type": "file",
            "format": "base64",
            "content": base64.b64encode(wheel.read_bytes()).decode(),
        },
    )
    assert r.status_code in (200, 201), r.text
    out = run_code(
        hub.url,
        dora,
        "dora",
        f"%pip install --no-index /home/jovyan/{wheel.name}\nimport doras_pkg\n"
        "print('FILE', doras_pkg.__file__)",
    )
    assert out["status"] == "ok", out
    assert "FILE /home/jovyan/.local/lib/python3.11/site-packages/doras_pkg.py" in out["stdout"]
    stop_server(hub.url, dora, "dora")  # the container goes (remove: true), the home stays
    start_server(hub.url, dora, "dora")
    assert run_ok(hub.url, dora, "dora", "import doras_pkg; print(doras_pkg.WHO)") == "dora"


def test_the_status_bar_shows_memory_against_the_limit(hub, admin, browser, artifacts):
    password = new_password()
    page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_up(page, hub, "erin", password)
    admin.approve("erin")
    log_in(page, hub, "erin", password)
    page.wait_for_url(re.compile(r".*/user/erin/lab.*"), timeout=180_000)
    page.locator(".jp-Launcher").first.wait_for(timeout=180_000)
    # jupyter-resource-usage's item: "Mem: <used> / <limit> MB|GB"
    memory = page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"Mem:"))
    memory.first.wait_for(timeout=60_000)
    text = memory.first.inner_text()
    assert re.search(r"/ 1(\.07|073\.74) ?GB|/ 1073\.74 ?MB|/ 1024(\.00)? ?MB", text), text
    page.screenshot(path=artifacts / "jupyterlab-resource-usage.png")
    page.locator(".jp-StatusBar-Widget").first.screenshot(
        path=artifacts / "statusbar-resource-usage.png"
    )
    assert not [e for e in errors if "dlhub" in e], errors


def test_the_status_bar_shows_the_servers_gpu(hub, admin, browser, artifacts):
    """The lab extension's GPU item, fed the answer a GPU server's dlhub/gpu-usage gives
    (the reader itself runs against NVML only on a GPU host: tests/images, gpu marker)."""
    gpu = {
        "index": 0,
        "uuid": "GPU-f8a39859-4a12-81c7-fee0-373f8ff06a14",
        "name": "NVIDIA H200",
        "memory_used": int(3.2 * 1024**3),
        "memory_total": 16 * 1024**3,
        "utilization": 87,
    }
    password = new_password()
    page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route(
        re.compile(r".*/user/frank/dlhub/gpu-usage$"),
        lambda route: route.fulfill(json={"gpus": [gpu]}),
    )
    sign_up(page, hub, "frank", password)
    admin.approve("frank")
    log_in(page, hub, "frank", password)
    page.wait_for_url(re.compile(r".*/user/frank/lab.*"), timeout=180_000)
    item = page.locator("#dlhub-gpu-usage")
    item.wait_for(timeout=60_000)
    assert item.inner_text() == "GPU 0: 3.2 / 16.0 GiB, 87 %"
    assert item.get_attribute("title") == f"NVIDIA H200 ({gpu['uuid']})"
    page.locator(".jp-StatusBar-Widget").first.screenshot(path=artifacts / "statusbar-gpu.png")
    assert not errors, errors
