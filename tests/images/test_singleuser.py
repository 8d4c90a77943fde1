"""The CPU user image: what a notebook user gets, run with `docker run`.

:class:`SingleuserChecks` holds the checks every user image passes; the GPU image's tests
(test_singleuser_gpu.py) inherit them.
"""

from __future__ import annotations

import json
import re
import textwrap

import jupyterhub
import pytest

pytestmark = pytest.mark.images

KERAS_FIT = textwrap.dedent(
    """
    import numpy as np, keras
    x = np.random.rand(256, 8).astype("float32")
    y = (x.sum(axis=1) > 4).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    print("loss", history.history["loss"][-1])
    """
)

SKLEARN_FIT = textwrap.dedent(
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    x = np.random.rand(200, 4)
    y = (x[:, 0] > 0.5).astype(int)
    print("score", LogisticRegression().fit(x, y).score(x, y))
    """
)


#: Run one cell (argv[1]) in a new kernel (argv[2], default python3) with nbclient and
#: print its outputs as JSON on the last line: what a notebook shows, stderr included.
RUN_CELL = textwrap.dedent(
    """
    import json, sys
    import nbclient, nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(sys.argv[1])])
    kernel = sys.argv[2] if len(sys.argv) > 2 else "python3"
    nbclient.NotebookClient(nb, timeout=300, kernel_name=kernel, allow_errors=True).execute()
    print(json.dumps(nb.cells[0].outputs))
    """
)

TF_CELL = "import tensorflow as tf\nprint(tf.reduce_sum(tf.constant([1.0, 2.0])).numpy())"


class SingleuserChecks:
    """Checks for a user image; subclasses set IMAGE (repository) and BUILD_WITH."""

    IMAGE: str
    IMAGE_ENV: str
    BUILD_WITH: str
    # containers of these tests need no network
    ARGS = ("--network", "none")

    def test_imports(self, built_image, docker_run):
        modules = (
            "tensorflow, keras, sklearn, pandas, matplotlib, ipywidgets, jupyter_server_proxy"
        )
        proc = docker_run(built_image, "python", "-c", f"import {modules}", args=self.ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def test_keras_fit(self, built_image, docker_run):
        proc = docker_run(built_image, "python", "-c", KERAS_FIT, args=self.ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.startswith("loss "), proc.stdout

    def test_sklearn_fit(self, built_image, docker_run):
        proc = docker_run(built_image, "python", "-c", SKLEARN_FIT, args=self.ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert float(proc.stdout.split()[-1]) > 0.8, proc.stdout

    def test_runs_as_uid_1000_not_root(self, built_image, docker_run, inspect_image):
        proc = docker_run(built_image, "id", "-u", args=self.ARGS)
        assert proc.stdout.strip() == "1000", proc.stdout + proc.stderr
        assert inspect_image(built_image)["Config"]["User"] == "1000"

    def test_singleuser_version_is_the_hubs(self, built_image, docker_run):
        proc = docker_run(built_image, "jupyterhub-singleuser", "--version", args=self.ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip() == jupyterhub.__version__

    def test_tini_is_pid_1(self, built_image, docker_run, inspect_image):
        config = inspect_image(built_image)["Config"]
        assert config["Entrypoint"] == ["tini", "-g", "--"]
        assert config["Cmd"] == ["dlhub-start", "jupyterhub-singleuser"]
        proc = docker_run(built_image, "cat", "/proc/1/cmdline", args=self.ARGS)
        assert proc.stdout.split("\0")[0] == "tini", proc.stdout

    def test_starter_notebooks_synced_never_over_a_users_edit(self, built_image, docker_run):
        # what the server extension does at each start (dlhub_lab.sync_starter): a user's
        # file stays, an edited starter notebook stays edited, a deleted one stays deleted
        sync = (
            "python -c 'from pathlib import Path; from dlhub_lab import starter, starter_dir;"
            " r = starter.sync(starter_dir(), Path.home()); print(len(r.copied), r.kept)'"
        )
        script = (
            f"echo mine > ~/README.md && {sync} && cat ~/README.md && "
            f"echo edited > ~/01-keras-digits.ipynb && rm ~/02-sklearn-pipeline.ipynb && {sync} "
            "&& cat ~/01-keras-digits.ipynb && ls ~/02-sklearn-pipeline.ipynb 2>/dev/null | wc -l"
        )
        proc = docker_run(built_image, "bash", "-c", script, args=self.ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        first, mine, second, edited, deleted = proc.stdout.splitlines()
        assert int(first.split()[0]) >= 4 and "README.md" in first  # kept, not copied
        assert mine == "mine"
        assert second.startswith("0 ") and "01-keras-digits.ipynb" in second
        assert edited == "edited"
        assert deleted == "0"

    def test_git_is_installed(self, built_image, docker_run):
        proc = docker_run(built_image, "git", "--version", args=self.ARGS)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("git version 2."), proc.stdout

    def test_nbgitpuller_and_resource_usage_are_server_extensions(self, built_image, docker_run):
        proc = docker_run(built_image, "jupyter", "server", "extension", "list", args=self.ARGS)
        listed = proc.stdout + proc.stderr
        for extension in ("nbgitpuller", "jupyter_resource_usage", "dlhub_lab"):
            assert re.search(rf"{extension}\S* .*enabled", listed), listed

    def test_the_gpu_reader_finds_no_gpu_and_no_error_without_one(self, built_image, docker_run):
        code = "from dlhub_lab.nvml import read_gpus; print(read_gpus())"
        proc = docker_run(built_image, "python", "-c", code, args=self.ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip() == "[]"

    def test_first_tensorflow_cell_prints_nothing_on_stderr(self, built_image, docker_run):
        proc = docker_run(built_image, "python", "-c", RUN_CELL, TF_CELL, args=self.ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs = json.loads(proc.stdout.splitlines()[-1])
        assert [o["text"] for o in outputs if o.get("name") == "stdout"] == ["3.0\n"]
        assert [o for o in outputs if o.get("name") == "stderr"] == []

    def test_tensorflow_logs_come_back_with_level_0(self, built_image, docker_run):
        args = (*self.ARGS, "-e", "TF_CPP_MIN_LOG_LEVEL=0")
        proc = docker_run(built_image, "python", "-c", RUN_CELL, TF_CELL, args=args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs = json.loads(proc.stdout.splitlines()[-1])
        stderr = "".join(o["text"] for o in outputs if o.get("name") == "stderr")
        assert "absl::InitializeLog" in stderr, outputs

    def test_the_pinned_environment_is_read_only_for_the_user(
        self, built_image, docker_run, wheels, make_wheel
    ):
        # a package named like a pinned one is refused in the user site: it would not win
        make_wheel("keras", "99.0", "raise ImportError('not the real keras')\n")
        script = (
            "test -w /opt/venv/lib/python3.11/site-packages; echo writable=$?; "
            "pip install --user --no-index /wheels/keras-99.0-py3-none-any.whl; echo rc=$?; "
            "python -c 'import keras; print(\"keras=\" + keras.__version__)'"
        )
        args = (*self.ARGS, "-v", f"{wheels}:/wheels:ro")
        proc = docker_run(built_image, "bash", "-c", script, args=args)
        said = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        assert said["writable"] == "1", proc.stdout + proc.stderr
        assert said["rc"] != "0", proc.stdout + proc.stderr
        assert "lack sys.path precedence" in proc.stderr
        assert said["keras"].startswith("3."), proc.stdout  # the pinned Keras

    def test_pip_installs_persist_in_the_home_and_come_after_the_pinned_ones(
        self, built_image, docker_run, wheels, make_wheel, home_volume
    ):
        for name in ("plain_pkg", "user_pkg", "magic_pkg"):
            make_wheel(name, "1.0", f"NAME = {name!r}\n")
        args = (*self.ARGS, "-v", f"{wheels}:/wheels:ro", "-v", f"{home_volume}:/home/jovyan")
        install = (
            "pip install --no-index /wheels/plain_pkg-1.0-py3-none-any.whl && "
            "pip install --user --no-index /wheels/user_pkg-1.0-py3-none-any.whl"
        )
        proc = docker_run(built_image, "bash", "-c", install, args=args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Defaulting to user installation" in proc.stdout + proc.stderr
        # %pip in a notebook: importable in the same kernel at once
        cell = "%pip install --no-index /wheels/magic_pkg-1.0-py3-none-any.whl\nimport magic_pkg"
        proc = docker_run(built_image, "python", "-c", RUN_CELL, cell, args=args)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
        assert not [o for o in json.loads(proc.stdout.splitlines()[-1]) if "ename" in o]
        # a new container (a restart, or an upgraded image) on the same home
        check = (
            "import sys, plain_pkg, user_pkg, magic_pkg\n"
            "print(*[m.__file__ for m in (plain_pkg, user_pkg, magic_pkg)])\n"
            "print(sys.path.index('/opt/venv/lib/python3.11/site-packages') <"
            " sys.path.index('/home/jovyan/.local/lib/python3.11/site-packages'))"
        )
        proc = docker_run(built_image, "python", "-c", check, args=args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        files, order = proc.stdout.splitlines()
        assert all(f.startswith("/home/jovyan/.local/lib/") for f in files.split()), files
        assert order == "True"

    def test_the_user_site_is_made_in_a_home_of_the_users_group(
        self, built_image, docker_run, home_volume
    ):
        # as a Kubernetes claim may be: root's, writable by the users' group (fsGroup 100)
        args = (*self.ARGS, "-v", f"{home_volume}:/home/jovyan")
        setup = "chown root:100 /home/jovyan && chmod 2775 /home/jovyan"
        proc = docker_run(built_image, "sh", "-c", setup, args=(*args, "--user", "0"))
        assert proc.returncode == 0, proc.stderr
        code = "import os, site; print(os.path.isdir(site.getusersitepackages()))"
        proc = docker_run(built_image, "python", "-c", code, args=args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip() == "True"

    def test_a_users_own_kernel_from_a_venv_in_the_home(
        self, built_image, docker_run, home_volume
    ):
        # the venv borrows the image's ipykernel through a .pth (no network here); a user
        # would `pip install ipykernel` into it
        make = (
            "python -m venv ~/envs/mine && "
            "echo /opt/venv/lib/python3.11/site-packages "
            "> ~/envs/mine/lib/python3.11/site-packages/image.pth && "
            "~/envs/mine/bin/python -m ipykernel install --user --name mine "
            "--display-name 'My env'"
        )
        args = (*self.ARGS, "-v", f"{home_volume}:/home/jovyan")
        proc = docker_run(built_image, "bash", "-c", make, args=args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # in a new container: the kernel is listed (as JupyterLab's launcher lists them)
        proc = docker_run(built_image, "jupyter", "kernelspec", "list", "--json", args=args)
        specs = json.loads(proc.stdout)["kernelspecs"]
        assert specs["mine"]["spec"]["display_name"] == "My env"
        assert specs["mine"]["resource_dir"] == "/home/jovyan/.local/share/jupyter/kernels/mine"
        cell = "import sys; print(sys.executable)"
        proc = docker_run(built_image, "python", "-c", RUN_CELL, cell, "mine", args=args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs = json.loads(proc.stdout.splitlines()[-1])
        assert outputs[0]["text"].strip() == "/home/jovyan/envs/mine/bin/python"

    def test_jupyterlab_overrides_installed(self, built_image, docker_run):
        path = "/opt/venv/share/jupyter/lab/settings/overrides.json"
        proc = docker_run(built_image, "cat", path, args=self.ARGS)
        assert '"checkForUpdates": false' in proc.stdout, proc.stderr

    def test_size_recorded(self, built_image, inspect_image, record_size):
        size = inspect_image(built_image)["Size"]
        record_size(built_image, size)
        print(f"{built_image}: {size / 1e6:.0f} MB")
        assert size > 0


class TestSingleuser(SingleuserChecks):
    IMAGE = "dlhub/singleuser"
    IMAGE_ENV = "DLHUB_SINGLEUSER_IMAGE"
    BUILD_WITH = "make images"
