"""Build dlhub's container images with `docker build` and record their sizes.

    python3 tools/images.py                       # singleuser, then hub (the default set)
    python3 tools/images.py singleuser hub        # a subset, built in the order below
    python3 tools/images.py singleuser-gpu        # the GPU user image (downloads several GB)

Images are tagged with the version in pyproject.toml (dlhub/singleuser:0.1.0, ...). Where
debian:bookworm-slim is not present locally, the Debian-based images are built on the local
equivalent that `tools/docker_engine.py base` makes (--build-arg BASE_IMAGE=...). Each
image's size and build time go into test-artifacts/image-sizes.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker_engine
import host

REPO = Path(__file__).resolve().parents[1]
SIZES = REPO / "test-artifacts" / "image-sizes.json"


@dataclass(frozen=True)
class Image:
    name: str  # repository, tagged with the project version
    dockerfile: str  # relative to the repository root
    context: str  # build context, relative to the repository root
    on_user_image: bool = False  # FROM the CPU user image instead of the Debian base


IMAGES = {
    "singleuser": Image("dlhub/singleuser", "images/singleuser/Dockerfile", "images/singleuser"),
    "hub": Image("dlhub/hub", "images/hub/Dockerfile", "."),
    "singleuser-gpu": Image(
        "dlhub/singleuser-gpu",
        "images/singleuser-gpu/Dockerfile",
        "images/singleuser-gpu",
        on_user_image=True,
    ),
}
DEFAULT = ["singleuser", "hub"]


def project_version() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def build_args(image: Image, version: str) -> list[str]:
    """The --build-arg flags for `image`: which base it is built on here."""
    if image.on_user_image:
        base = f"{IMAGES['singleuser'].name}:{version}"
    else:
        base = docker_engine.base_image()
        if base == docker_engine.PUBLIC_BASE:
            return []  # the Dockerfile's default
    return ["--build-arg", f"BASE_IMAGE={base}"]


def image_id_and_size(tag: str) -> tuple[str, int] | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}} {{.Size}}", tag],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return None
    image_id, size = result.stdout.split()
    return image_id, int(size)


def record(tag: str, size: int, seconds: float, base: str) -> None:
    SIZES.parent.mkdir(exist_ok=True)
    try:
        sizes = json.loads(SIZES.read_text())
    except (OSError, ValueError):
        sizes = {}
    sizes[tag] = {
        "bytes": size,
        "mb": round(size / 1e6),
        "build_seconds": round(seconds, 1),
        "base": base,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    SIZES.write_text(json.dumps(sizes, indent=2, sort_keys=True) + "\n")


def build(key: str, version: str) -> None:
    image = IMAGES[key]
    tag = f"{image.name}:{version}"
    if image.on_user_image and not host.image_exists(f"{IMAGES['singleuser'].name}:{version}"):
        raise SystemExit(
            f"images: {tag} is built on {IMAGES['singleuser'].name}:{version}, which does not "
            "exist; build it first (`python3 tools/images.py singleuser`)"
        )
    args = build_args(image, version)
    base = args[-1].split("=", 1)[1] if args else docker_engine.PUBLIC_BASE
    print(f"==> image {tag}: building on {base}", flush=True)
    before = image_id_and_size(tag)
    started = time.monotonic()
    command = ["docker", "build", "-f", image.dockerfile, "-t", tag, *args, image.context]
    result = subprocess.run(command, cwd=REPO)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"images: building {tag} failed after {seconds:.0f} s (output above)")
    after = image_id_and_size(tag)
    if after is None:
        raise SystemExit(f"images: docker build succeeded but there is no image {tag}")
    size = after[1]
    if before and before[0] == after[0]:
        # every step came from the cache: keep the recorded time of the build that made it
        print(f"==> image {tag}: up to date ({seconds:.0f} s), {size / 1e6:.0f} MB", flush=True)
        return
    record(tag, size, seconds, base)
    print(f"==> image {tag}: built in {seconds:.0f} s, {size / 1e6:.0f} MB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "images",
        nargs="*",
        help=f"which images to build: {', '.join(IMAGES)} (default: {' '.join(DEFAULT)})",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.images) - set(IMAGES))
    if unknown:
        parser.error(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(IMAGES)}")
    wanted = args.images or DEFAULT
    if not host.docker_works():
        raise SystemExit(
            "images: the docker engine is not running; start it with `make engine` "
            "(python3 tools/docker_engine.py start && python3 tools/docker_engine.py base)"
        )
    version = project_version()
    for key in IMAGES:  # dependency order, whatever the order on the command line
        if key in wanted:
            build(key, version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
