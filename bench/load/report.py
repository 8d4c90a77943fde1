"""The load benchmark's table and plots, made from ``bench/results/load.json``.

    .venv/bin/python bench/load/report.py            # write the table and the plots
    .venv/bin/python bench/load/report.py --check    # is docs/benchmarks.md's table current?

The table sits in docs/benchmarks.md between ``<!-- load-table -->`` and
``<!-- /load-table -->``; the plots are docs/images/load-<backend>.png (the hub API's
latency over time, by phase, as the concurrent prober saw it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "load.json"
DOC = REPO / "docs" / "benchmarks.md"
IMAGES = REPO / "docs" / "images"
START, END = "<!-- load-table -->", "<!-- /load-table -->"
BACKENDS = ("local", "docker", "local-postgres", "docker-postgres")


def _s(value) -> str:
    return "–" if value is None else f"{value:.3g} s"


def table(doc: dict) -> str:
    """The summary of each backend as a Markdown table (pure)."""
    rows = [
        "| backend | users | all signed in | burst servers | burst all ready "
        "| errors (not 429) | hub API p95 | hub API p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend in BACKENDS:
        s = doc.get(backend)
        if not s:
            continue
        rows.append(
            f"| {backend} | {s['users']} | {_s(s['sign_in_all_s'])} | {s['burst_servers']} "
            f"| {_s(s['burst_ready_s'])} | {s['errors_other_than_429']} "
            f"| {_s(s['hub_api_p95_s'])} | {_s(s['hub_api_p99_s'])} |"
        )
        before = s.get("event_loop_hashing")
        if before:
            rows.append(
                f"| {backend}, bcrypt on the event loop (before) | {s['users']} "
                f"| {_s(before['sign_in_all_s'])} | – | – | – "
                f"| {_s(before['hub_api_p95_s'])} | {_s(before['hub_api_p99_s'])} |"
            )
    return "\n".join(rows)


def with_table(text: str, rendered: str) -> str:
    """``text`` with the part between the markers replaced by ``rendered`` (pure)."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{rendered}\n{END}{tail}"


def plot(doc: dict, backend: str, path: Path) -> None:
    """The prober's hub API latency over the run, one colour per phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    detail = doc["details"][backend]
    samples = list(detail.get("samples_event_loop", {}).get("prober", []))
    samples += detail["samples"]["prober"]
    labels = {
        "storm_event_loop": "sign-in storm, bcrypt on the event loop (before)",
        "storm": "sign-in storm, bcrypt in the thread pool",
        "burst": "server burst (spawn, proxy, kernel, cell, stop)",
        "after": "after",
    }
    fig, ax = plt.subplots(figsize=(9, 4))
    for phase, label in labels.items():
        points = [(x["t"], x["s"]) for x in samples if x["phase"] == phase]
        if points:
            ax.scatter(*zip(*points, strict=True), s=4, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("GET /hub/api/ latency (s)")
    s = doc[backend]
    ax.set_title(
        f"{backend} backend: {s['users']} users sign in, {s['burst_servers']} servers start"
    )
    ax.axhline(1.0, color="grey", linewidth=0.5, linestyle="--")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check the docs table")
    args = ap.parse_args(argv)
    doc = json.loads(RESULTS.read_text())
    text = DOC.read_text()
    current = with_table(text, table(doc))
    if args.check:
        if current != text:
            print("docs/benchmarks.md: the load table differs from bench/results/load.json; "
                  "run bench/load/report.py")  # fmt: skip
            return 1
        return 0
    DOC.write_text(current)
    for backend in BACKENDS:
        if backend in doc and backend in doc.get("details", {}):
            plot(doc, backend, IMAGES / f"load-{backend}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
