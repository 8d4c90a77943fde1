"""The load benchmark's docs table is made from its results: docs/benchmarks.md shows
exactly what bench/results/load.json says (bench/load/report.py renders it)."""

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def report():
    spec = importlib.util.spec_from_file_location("load_report", REPO / "bench/load/report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_table_matches_the_results():
    r = report()
    text = r.DOC.read_text()
    doc = json.loads(r.RESULTS.read_text())
    assert r.with_table(text, r.table(doc)) == text, "run bench/load/report.py"


def test_the_results_start_with_a_summary_per_backend():
    r = report()
    doc = json.loads(r.RESULTS.read_text())
    first = next(iter(doc))
    assert first in r.BACKENDS
    keys = {"users", "sign_in_all_s", "burst_servers", "burst_ready_s",
            "errors_other_than_429", "hub_api_p95_s", "hub_api_p99_s"}  # fmt: skip
    for backend in r.BACKENDS:
        if backend in doc:
            assert keys <= set(doc[backend]), backend


def test_the_table_shows_each_backend_and_the_before():
    r = report()
    summary = {
        "users": 5, "sign_in_all_s": 1.5, "burst_servers": 2, "burst_ready_s": 9.25,
        "errors_other_than_429": 0, "hub_api_p95_s": 0.1, "hub_api_p99_s": 0.2,
        "event_loop_hashing": {"sign_in_all_s": 3.0, "hub_api_p95_s": 2.5, "hub_api_p99_s": 4},
    }  # fmt: skip
    rows = r.table({"local": summary}).splitlines()
    assert rows[2] == "| local | 5 | 1.5 s | 2 | 9.25 s | 0 | 0.1 s | 0.2 s |"
    before = "| local, bcrypt on the event loop (before) | 5 | 3 s | – | – | – | 2.5 s | 4 s |"
    assert rows[3] == before
    assert r.with_table("a\n<!-- load-table -->\nold\n<!-- /load-table -->\nb", "new") == (
        "a\n<!-- load-table -->\nnew\n<!-- /load-table -->\nb"
    )
