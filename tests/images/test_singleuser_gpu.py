"""The GPU user image: every check of the CPU image, plus TensorFlow seeing a GPU.

The image is optional (`make image-gpu`; `make images` does not build it): its tests are
skipped when it is missing. The GPU check is skipped on a host without an NVIDIA GPU.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from test_singleuser import RUN_CELL, TF_CELL, SingleuserChecks

pytestmark = pytest.mark.images


def host_has_gpu() -> bool:
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


class TestSingleuserGpu(SingleuserChecks):
    IMAGE = "dlhub/singleuser-gpu"
    IMAGE_ENV = "DLHUB_SINGLEUSER_GPU_IMAGE"
    BUILD_WITH = "make image-gpu"

    def test_no_gpu_unless_assigned(self, built_image, docker_run):
        # without device requests the NVIDIA runtime hides every GPU (NVIDIA_VISIBLE_DEVICES)
        proc = docker_run(built_image, "printenv", "NVIDIA_VISIBLE_DEVICES", args=self.ARGS)
        assert proc.stdout.strip() == "void"

    @pytest.mark.gpu
    def test_first_tensorflow_cell_prints_nothing_on_stderr(self, built_image, docker_run):
        # with its GPU: without one, TensorFlow's CUDA build rightly logs an error
        # ("failed call to cuInit"), which TF_CPP_MIN_LOG_LEVEL=2 keeps
        if not host_has_gpu():
            pytest.skip("this host has no NVIDIA GPU (no /dev/nvidia0, no nvidia-smi)")
        args = (*self.ARGS, "--gpus", "all", "-e", "NVIDIA_VISIBLE_DEVICES=all")
        proc = docker_run(built_image, "python", "-c", RUN_CELL, TF_CELL, args=args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs = json.loads(proc.stdout.splitlines()[-1])
        assert [o for o in outputs if o.get("name") == "stderr"] == [], outputs

    @pytest.mark.gpu
    def test_tensorflow_sees_the_gpu(self, built_image, docker_run):
        if not host_has_gpu():
            pytest.skip("this host has no NVIDIA GPU (no /dev/nvidia0, no nvidia-smi)")
        code = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
        proc = docker_run(
            built_image,
            "python",
            "-c",
            code,
            args=(*self.ARGS, "--gpus", "all", "-e", "NVIDIA_VISIBLE_DEVICES=all"),
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert int(proc.stdout.split()[-1]) > 0, proc.stdout + proc.stderr[-3000:]

    @pytest.mark.gpu
    def test_the_status_bars_gpu_reader_sees_the_assigned_gpu(self, built_image, docker_run):
        if not host_has_gpu():
            pytest.skip("this host has no NVIDIA GPU (no /dev/nvidia0, no nvidia-smi)")
        code = "import json; from dlhub_lab.nvml import read_gpus; print(json.dumps(read_gpus()))"
        args = (*self.ARGS, "--gpus", "all", "-e", "NVIDIA_VISIBLE_DEVICES=all")
        proc = docker_run(built_image, "python", "-c", code, args=args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        gpus = json.loads(proc.stdout.splitlines()[-1])
        assert gpus and gpus[0]["memory_total"] > 0 and gpus[0]["uuid"].startswith("GPU-")
