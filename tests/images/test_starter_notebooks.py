"""The starter notebooks run top to bottom inside the CPU user image, with no network."""

from __future__ import annotations

import os
import subprocess

import pytest

from hubtest import part_missing

pytestmark = pytest.mark.images

IMAGE = os.environ.get("DLHUB_SINGLEUSER_IMAGE", "dlhub/singleuser:0.1.0")


def image_present() -> bool:
    try:
        out = subprocess.run(
            ["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


@pytest.fixture(scope="module")
def image():
    if not image_present():
        message = f"needs a Docker engine and {IMAGE} (`make images`)"
        part_missing(message)
    return IMAGE


def test_starter_notebooks_execute_in_the_image(image):
    script = (
        "set -e; cp -r /opt/dlhub/starter /tmp/nb; cd /tmp/nb; "
        "ls *.ipynb; jupyter execute --inplace *.ipynb; "
        'python -c "import json,glob; '
        "[print(p, sum(len(c.get('outputs', [])) for c in json.load(open(p))['cells'])) "
        "for p in sorted(glob.glob('*.ipynb'))]\""
    )
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    executed = dict(line.split() for line in proc.stdout.splitlines() if " " in line)
    assert set(executed) == {
        "01-keras-digits.ipynb",
        "02-sklearn-pipeline.ipynb",
        "03-tensorboard.ipynb",
        "04-do-i-have-a-gpu.ipynb",
    }
    # every notebook produced output (the cells ran, they were not skipped)
    assert all(int(n) > 0 for n in executed.values()), executed
