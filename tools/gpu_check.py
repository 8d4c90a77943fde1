"""Check dlhub's GPU paths on a host with an NVIDIA GPU, and keep what was seen.

    python3 tools/gpu_check.py record nvml.json
    python3 tools/gpu_check.py run OUT_DIR [pytest arguments]
    python3 tools/gpu_check.py summary RESULT.json nvml.json junit.xml [...] [--note TEXT]

``record``: every answer NVML gives to the calls the scheduler's inventory makes (names,
UUIDs, memory, MIG mode, utilisation; an error as its name and code), per card and MIG
instance, with the driver's versions and ``nvidia-smi -L``. A copy in tests/data/ lets
the tests replay a real driver on hosts without one (``gputest.RecordedNVML``).

``run``: ``record`` into OUT_DIR/nvml.json, then the tests marked ``gpu`` of the given
pytest arguments (by default the inventory's, the lease-visibility and the hub's), their
JUnit report in OUT_DIR/junit.xml, then ``summary`` into OUT_DIR/gpu-device-check.json.

``summary``: the machine (GPU model, memory, driver, CUDA driver version) and every test
of the JUnit reports with its outcome and time, as one JSON document
(bench/results/gpu-device-check.json is one).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DEFAULT_TESTS = [
    "tests/unit/test_inventory.py",
    "tests/unit/test_inventory_mig.py",
    "tests/unit/test_nvml_devices.py",
    "tests/security/test_gpu_isolation.py",  # the hub's: needs `make install`
]


def _answer(nvml, call, *args):
    """``call(*args)``, or ``{"error": {"name", "code"}}`` when the driver refuses."""
    try:
        value = call(*args)
    except nvml.NVMLError as e:
        code = getattr(e, "value", None)
        return {"error": {"name": type(e).__name__, "code": code, "text": str(e)}}
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "_fields_"):
        return {name: _plain(getattr(value, name)) for name, *_ in value._fields_}
    if type(value).__name__ == "SimpleNamespace":  # a stand-in driver's structure
        return {name: _plain(v) for name, v in vars(value).items()}
    return _plain(value)


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _device(nvml, handle) -> dict:
    return {
        "uuid": _answer(nvml, nvml.nvmlDeviceGetUUID, handle),
        "name": _answer(nvml, nvml.nvmlDeviceGetName, handle),
        "memory": _answer(nvml, nvml.nvmlDeviceGetMemoryInfo, handle),
        "utilization": _answer(nvml, nvml.nvmlDeviceGetUtilizationRates, handle),
    }


def record(nvml=None) -> dict:
    """What NVML answers on this host (see the module's doc)."""
    if nvml is None:
        import pynvml as nvml
    nvml.nvmlInit()
    try:
        out = {
            "recorded": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "driver_version": _answer(nvml, nvml.nvmlSystemGetDriverVersion),
            "nvml_version": _answer(nvml, nvml.nvmlSystemGetNVMLVersion),
            "cuda_driver_version": _answer(nvml, nvml.nvmlSystemGetCudaDriverVersion),
            "devices": [],
        }
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            card = {"index": index, **_device(nvml, handle)}
            card["pci_bus_id"] = _answer(
                nvml, lambda h: nvml.nvmlDeviceGetPciInfo(h).busId, handle
            )
            card["mig_mode"] = _answer(nvml, nvml.nvmlDeviceGetMigMode, handle)
            card["max_mig_device_count"] = _answer(
                nvml, nvml.nvmlDeviceGetMaxMigDeviceCount, handle
            )
            card["mig_devices"] = []
            mode = card["mig_mode"]
            if isinstance(mode, list) and mode[0] == nvml.NVML_DEVICE_MIG_ENABLE:
                for slot in range(card["max_mig_device_count"]):
                    mig = _answer(nvml, nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
                    if isinstance(mig, dict) and "error" in mig:
                        card["mig_devices"].append(mig)
                        continue
                    mig_handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                    card["mig_devices"].append(_device(nvml, mig_handle))
            out["devices"].append(card)
        return out
    finally:
        nvml.nvmlShutdown()


def _smi_list() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    return done.stdout


def junit_tests(path: Path) -> list[dict]:
    """Every test case of a JUnit report: its id, outcome and seconds."""
    tests = []
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        module = classname.replace(".", "/") + ".py"
        outcome = "passed"
        detail = None
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                detail = (child.get("message") or "")[:300]
        entry = {
            "id": f"{module}::{case.get('name')}",
            "outcome": outcome,
            "seconds": round(float(case.get("time", 0)), 2),
        }
        if detail:
            entry["detail"] = detail
        tests.append(entry)
    return tests


def summary(nvml_record: dict, reports: list[Path], note: str = "") -> dict:
    """The machine and the tests' outcomes (see the module's doc); ``note``: how they
    ran, in a sentence."""
    tests = [t for report in reports for t in junit_tests(report)]
    counts: dict[str, int] = {}
    for test in tests:
        counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    cards = nvml_record["devices"]
    return {
        "date": nvml_record["recorded"],
        "machine": {
            "gpus": [
                {"name": c["name"], "memory_mib": c["memory"]["total"] // 2**20} for c in cards
            ],
            "driver_version": nvml_record["driver_version"],
            "cuda_driver_version": nvml_record["cuda_driver_version"],
            "nvml_version": nvml_record["nvml_version"],
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        **({"note": note} if note else {}),
        "counts": counts,
        "tests": tests,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record", help="what NVML answers here, as JSON")
    p.add_argument("dest", type=Path)
    p = sub.add_parser("run", help="record, run the gpu tests, summarise")
    p.add_argument("out", type=Path)
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p = sub.add_parser("summary", help="the machine and the tests' outcomes, as JSON")
    p.add_argument("dest", type=Path)
    p.add_argument("nvml", type=Path)
    p.add_argument("reports", type=Path, nargs="+")
    p.add_argument("--note", default="", help="how the tests ran, in a sentence")
    args = parser.parse_args(argv)

    if args.command == "record":
        recorded = {**record(), "nvidia_smi_list": _smi_list()}
        args.dest.write_text(json.dumps(recorded, indent=2) + "\n")
        return 0
    if args.command == "summary":
        result = summary(json.loads(args.nvml.read_text()), args.reports, args.note)
        args.dest.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    nvml_file = args.out / "nvml.json"
    nvml_file.write_text(json.dumps({**record(), "nvidia_smi_list": _smi_list()}, indent=2) + "\n")
    report = args.out / "junit.xml"
    pytest_args = args.pytest_args or ["-m", "gpu", *DEFAULT_TESTS]
    rc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", f"--junitxml={report}", *pytest_args]
    ).returncode
    result = summary(json.loads(nvml_file.read_text()), [report])
    (args.out / "gpu-device-check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["counts"]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
