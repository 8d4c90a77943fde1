"""What a user's server on the local backend is made of, through a real hub: its PATH
(the user environment's tools, never the hub's), TensorFlow quiet by default, packages the
user installs kept in their home across restarts, the resource use display's numbers
against the profile's limits, the starter notebooks kept in sync without losing edits."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import wheeltest
from hubtest import run_code, run_ok, start_server, stop_server, token_api, user_env

pytestmark = pytest.mark.integration

PROFILES = [{"name": "small", "cpu_limit": 1, "mem_limit": "1G", "default": True}]


@pytest.fixture(scope="module")
def hub(hub_factory):
    return hub_factory({"profiles": PROFILES, "culling": {"enabled": False}})


@pytest.fixture(scope="module")
def carol(hub):
    """carol's token, and her server running."""
    admin = hub.admin()
    user = hub.approved_user(admin, "carol")
    token = user.new_token("user env tests")
    start_server(hub.url, token, "carol")
    yield token
    stop_server(hub.url, token, "carol")


@pytest.fixture(scope="module")
def wheels(hub, tmp_path_factory) -> Path:
    """A directory every account can read: the server runs as carol's account as root."""
    root = hub.shared_root or tmp_path_factory.mktemp("wheels")
    directory = Path(root) / "wheels"
    directory.mkdir(exist_ok=True)
    directory.chmod(0o755)
    wheeltest.make_wheel(directory, "carols_pkg", "1.0", "WHO = 'carol'\n")
    return directory


def test_pip_and_python_are_the_user_environments_never_the_hubs(hub, carol):
    out = run_ok(
        hub.url,
        carol,
        "carol",
        "import os, shutil, sys; print(shutil.which('pip')); print(shutil.which('python'));"
        "print(os.environ['PATH']); print(os.environ['VIRTUAL_ENV'])",
    )
    pip, python, path, venv = out.splitlines()
    env = str(user_env())
    assert pip == f"{env}/bin/pip" and python == f"{env}/bin/python"
    directories = path.split(os.pathsep)
    assert directories[:2] == [f"{env}/bin", f"{hub.home('carol')}/.local/bin"]
    hub_bin = str(Path(sys.executable).parent)
    assert hub_bin not in directories, path
    assert not any(Path(d).parent.joinpath("pyvenv.cfg").exists() for d in directories[2:])
    assert venv == env


TF_CELL = "import tensorflow as tf\nprint(tf.reduce_sum(tf.constant([1.0, 2.0])).numpy())"


def test_a_first_tensorflow_cell_prints_nothing_on_stderr(hub, carol):
    out = run_code(hub.url, carol, "carol", TF_CELL)
    assert out["status"] == "ok", out
    assert out["stdout"] == "3.0\n"
    assert out["stderr"] == "", out["stderr"]
    level = run_ok(hub.url, carol, "carol", "import os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])")
    assert level == "2"


def test_tensorflows_lines_come_back_with_level_0(hub, carol):
    out = run_code(hub.url, carol, "carol", "%env TF_CPP_MIN_LOG_LEVEL=0\n" + TF_CELL)
    assert out["status"] == "ok", out
    assert "absl::InitializeLog" in out["stderr"], out


def test_a_kernel_from_a_venv_in_the_home_is_listed(hub, carol):
    # the venv borrows the user environment's ipykernel through a .pth (no network); a
    # user would `pip install ipykernel` into it
    site = user_env() / "lib/python3.11/site-packages"
    make = (
        "import subprocess, sys, os\n"
        "home = os.path.expanduser('~')\n"
        "subprocess.run([sys.executable, '-m', 'venv', f'{home}/envs/mine'], check=True)\n"
        f"open(f'{{home}}/envs/mine/lib/python3.11/site-packages/env.pth', 'w').write('{site}')\n"
        "subprocess.run([f'{home}/envs/mine/bin/python', '-m', 'ipykernel', 'install',"
        " '--user', '--name', 'mine', '--display-name', 'My env'], check=True)\n"
    )
    out = run_code(hub.url, carol, "carol", make)
    assert out["status"] == "ok", out
    specs = token_api(hub.url, carol, "GET", "/user/carol/api/kernelspecs").json()["kernelspecs"]
    assert specs["mine"]["spec"]["display_name"] == "My env"
    argv0 = specs["mine"]["spec"]["argv"][0]
    assert argv0 == f"{hub.home('carol')}/envs/mine/bin/python"


def test_a_package_installed_in_a_notebook_survives_a_restart(hub, carol, wheels):
    wheel = wheels / "carols_pkg-1.0-py3-none-any.whl"
    out = run_code(
        hub.url,
        carol,
        "carol",
        f"%pip install --no-index {wheel}\nimport carols_pkg\nprint('FILE', carols_pkg.__file__)",
    )
    assert out["status"] == "ok", out
    home = hub.home("carol")
    assert f"FILE {home}/.local/lib/python3.11/site-packages/carols_pkg.py" in out["stdout"]
    # the shared user environment is untouched
    assert not (user_env() / "lib/python3.11/site-packages/carols_pkg.py").exists()
    stop_server(hub.url, carol, "carol")
    start_server(hub.url, carol, "carol")
    out = run_ok(hub.url, carol, "carol", "import carols_pkg; print(carols_pkg.WHO)")
    assert out == "carol"


def test_resource_use_reports_memory_and_cpu_against_the_profile(hub, carol):
    r = token_api(hub.url, carol, "GET", "/user/carol/api/metrics/v1")
    assert r.status_code == 200, r.text
    metrics = r.json()
    assert metrics["rss"] > 10 * 1024**2
    assert metrics["limits"]["memory"]["rss"] == 1024**3  # the profile's 1G
    assert metrics["limits"]["cpu"]["cpu"] == 1.0
    assert "cpu_percent" in metrics


def test_starter_notebooks_keep_the_users_edits(hub, carol):
    home = hub.home("carol")
    manifest = json.loads((home / ".dlhub" / "starter.json").read_text())["files"]
    assert "01-keras-digits.ipynb" in manifest
    r = token_api(
        hub.url,
        carol,
        "PUT",
        "/user/carol/api/contents/01-keras-digits.ipynb",
        json={"type": "file", "format": "text", "content": "carol's notes"},
    )
    assert r.status_code in (200, 201), r.text
    token_api(hub.url, carol, "DELETE", "/user/carol/api/contents/02-sklearn-pipeline.ipynb")
    stop_server(hub.url, carol, "carol")
    start_server(hub.url, carol, "carol")
    assert (home / "01-keras-digits.ipynb").read_text() == "carol's notes"
    assert not (home / "02-sklearn-pipeline.ipynb").exists()
    assert (home / "03-tensorboard.ipynb").exists()
