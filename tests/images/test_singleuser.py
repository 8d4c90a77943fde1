"""The CPU user image: what a notebook user gets, run with `docker run`.

:class:`SingleuserChecks` holds the checks every user image passes; the GPU image's tests
(test_singleuser_gpu.py) inherit them.
"""

from __future__ import annotations

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

    def test_starter_notebooks_copied_once_never_over_a_users_file(self, built_image, docker_run):
        script = (
            "echo mine > ~/README.md && dlhub-start true && cat ~/README.md && "
            "ls ~/*.ipynb | wc -l && rm ~/*.ipynb && dlhub-start true && "
            "ls ~/*.ipynb 2>/dev/null | wc -l"
        )
        proc = docker_run(built_image, "bash", "-c", script, args=self.ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        mine, copied, after_delete = proc.stdout.split()
        assert mine == "mine"
        assert int(copied) > 0
        assert after_delete == "0"  # the stamp keeps deleted notebooks deleted

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
