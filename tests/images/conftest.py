"""Fixtures for the image tests (marker ``images``): they run the built images with `docker run`.

- ``built_image``: the ``dlhub/...:<version>`` tag named by the test class's ``IMAGE``
  (``IMAGE_ENV`` names an environment variable that may replace it); a missing engine or
  image is a skip locally and a failure with ``CI`` set (`make test` builds every image,
  the GPU image included).
- ``docker_run``: run a command in a throwaway container of an image; returns the
  ``CompletedProcess`` (text, stdout and stderr captured).
- ``inspect_image``: ``docker image inspect`` of a tag, as a dict.
- ``record_size``: add an image's size to test-artifacts/image-sizes.json.
- ``wheels``, ``make_wheel``: a directory of one-module wheels made by hand (offline
  ``pip install`` tests); ``home_volume``: a fresh Docker volume for a home.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

import wheeltest
from hubtest import part_missing

REPO = Path(__file__).resolve().parents[2]
SIZES = REPO / "test-artifacts" / "image-sizes.json"


def project_version() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def engine_works() -> bool:
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def image_exists(tag: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    return result.returncode == 0


def _inspect_image(tag: str) -> dict:
    out = subprocess.run(
        ["docker", "image", "inspect", tag], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)[0]


def _record_size(tag: str, size: int) -> None:
    """Add the measured size to test-artifacts/image-sizes.json (kept with the build times)."""
    SIZES.parent.mkdir(exist_ok=True)
    try:
        sizes = json.loads(SIZES.read_text())
    except (OSError, ValueError):
        sizes = {}
    sizes.setdefault(tag, {}).update(bytes=size, mb=round(size / 1e6))
    SIZES.write_text(json.dumps(sizes, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def docker_engine():
    if not engine_works():
        message = "the image tests need a Docker engine (run `make engine`)"
        part_missing(message)


@pytest.fixture(scope="class")
def built_image(request, docker_engine) -> str:
    cls = request.cls
    tag = os.environ.get(getattr(cls, "IMAGE_ENV", ""), "") or f"{cls.IMAGE}:{project_version()}"
    if not image_exists(tag):
        message = f"image {tag} is not built (run `{cls.BUILD_WITH}`)"
        part_missing(message)
    return tag


@pytest.fixture(scope="session")
def docker_run():
    def run(image: str, *command: str, args: tuple = (), timeout: float = 300):
        return subprocess.run(
            ["docker", "run", "--rm", *args, image, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def inspect_image():
    return _inspect_image


@pytest.fixture(scope="session")
def record_size():
    return _record_size


@pytest.fixture
def wheels(tmp_path) -> Path:
    """A directory the image's user can read, for wheels made with :func:`make_wheel`."""
    directory = tmp_path / "wheels"
    directory.mkdir()
    directory.chmod(0o755)
    return directory


@pytest.fixture
def home_volume(docker_engine):
    """A fresh Docker volume for /home/jovyan (as a user's home volume), removed after."""
    name = f"dlhub-test-home-{os.urandom(4).hex()}"
    subprocess.run(["docker", "volume", "create", name], check=True, capture_output=True)
    yield name
    subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True)


@pytest.fixture
def make_wheel(wheels):
    """``make_wheel(name, version, code)``: a one-module wheel in :func:`wheels`."""
    return lambda name, version, code: wheeltest.make_wheel(wheels, name, version, code)
