"""A class arriving at once: simulated users doing the real journey through a real hub.

    .venv/bin/python bench/load/run.py [--backend local docker] [--users 500]
        [--burst 100] [--docker-burst 50] [--concurrency 50]
        [--out bench/results/load.json]

Per backend, one hub (``hubtest.RunningHub``: the real hub, configurable-http-proxy and
spawner) with the light profile below, and ``--users`` users made beforehand through the
hub's REST API and signed up through the sign-up form (known users are approved at
once). Then, with a prober asking ``GET /hub/api/`` every 0.25 s and the hub's CPU and
memory sampled every second (psutil on its pid):

1. **sign-in storm, hashing on the event loop** (``auth.password_hash_threads: 0``, the
   code path before the fix; local backend only): every user opens the login page and
   signs in through the form (cookies, XSRF), ``--concurrency`` at a time;
2. the hub restarted on the same database with the default thread pool; the same storm;
3. **burst**: ``--burst`` users (``--docker-burst`` on docker) ask for their server at
   the same moment through the REST API with their cookie, wait until the hub reports it
   ready, open it through the proxy (the OAuth redirect to their server and back), start
   a kernel and run a cell over the kernel websocket; a 429 is retried after its
   ``Retry-After``; then every server is checked reachable, all are stopped at once, and
   every stopped one must be gone from the hub, the proxy's route table and the proxy.

Every step's latency (p50/p95/p99), errors by kind (429s that succeeded on retry are
counted apart), the prober's latencies, the hub's CPU and memory, the load average and
the machine go to ``--out``, which starts with a summary per backend; ``report.py``
renders the docs table and the latency plot from it. Users, their system accounts
(local as root: removed the way the tests remove them), containers and volumes are
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from machine import describe  # noqa: E402

from hubtest import RunningHub, new_password, run_code, token_api, wait_for  # noqa: E402

#: The light profile: the user environment's Jupyter server with a small memory and
#: CPU share; the journey uses the server's REST API and a kernel, no JupyterLab page.
LIGHT_PROFILE = {
    "name": "light",
    "display_name": "Light",
    "description": "A small server for a class: half a core, 512 MB",
    "cpu_limit": 0.5,
    "mem_limit": "512M",
    "default": True,
}
CELL = "print(6 * 7)"
RETRY_CAP = 60  # seconds; a 429's Retry-After is honoured up to this


class Recorder:
    """Step latencies and errors, thread-safe, with times relative to ``t0``."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.steps: list[dict] = []
        self.errors: dict[str, int] = {}
        self.retried_429: dict[str, int] = {}

    def now(self) -> float:
        return time.monotonic() - self.t0

    def step(self, phase: str, name: str, started: float, ok: bool = True):
        with self.lock:
            self.steps.append(
                {
                    "phase": phase,
                    "step": name,
                    "t": round(started, 3),
                    "s": round(self.now() - started, 4),
                    "ok": ok,
                }
            )

    def error(self, kind: str):
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def throttled(self, step: str):
        with self.lock:
            self.retried_429[step] = self.retried_429.get(step, 0) + 1


class Prober(threading.Thread):
    """``GET /hub/api/`` every 0.25 s: latency and status over time."""

    def __init__(self, url: str, rec: Recorder):
        super().__init__(daemon=True)
        self.url, self.rec = url, rec
        self.samples: list[dict] = []
        self.phase = "idle"
        self.stopping = threading.Event()

    def run(self):
        with requests.Session() as s:
            while not self.stopping.is_set():
                t = self.rec.now()
                try:
                    status = s.get(f"{self.url}/hub/api/", timeout=30).status_code
                except requests.RequestException as e:
                    status = type(e).__name__
                self.samples.append(
                    {"phase": self.phase, "t": round(t, 3),
                     "s": round(self.rec.now() - t, 4), "status": status}
                )  # fmt: skip
                self.stopping.wait(0.25)


class HubMonitor(threading.Thread):
    """The hub process's CPU (% of one core) and memory (RSS), and the load average."""

    def __init__(self, pid: int, rec: Recorder):
        super().__init__(daemon=True)
        self.proc, self.rec = psutil.Process(pid), rec
        self.samples: list[dict] = []
        self.phase = "idle"
        self.stopping = threading.Event()

    def run(self):
        self.proc.cpu_percent(None)
        while not self.stopping.wait(1.0):
            try:
                cpu, rss = self.proc.cpu_percent(None), self.proc.memory_info().rss
            except psutil.Error:
                return
            self.samples.append(
                {"phase": self.phase, "t": round(self.rec.now(), 1), "cpu_percent": cpu,
                 "rss_mb": round(rss / 2**20, 1), "load1": os.getloadavg()[0]}
            )  # fmt: skip


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


def stats(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_s": pct(values, 0.5),
        "p95_s": pct(values, 0.95),
        "p99_s": pct(values, 0.99),
        "max_s": round(max(values), 4) if values else None,
    }


def retrying(rec: Recorder, step: str, call, deadline: float = 900):
    """``call()`` until it is not a 429, waiting its Retry-After; the last response."""
    end = time.monotonic() + deadline
    while True:
        r = call()
        if r.status_code != 429 or time.monotonic() > end:
            return r
        rec.throttled(step)
        time.sleep(min(RETRY_CAP, int(r.headers.get("Retry-After") or 5)))


# --- the journey ---------------------------------------------------------------------


def sign_in(hub: RunningHub, rec: Recorder, phase: str, name: str, password: str):
    """Open the login page, sign in through the form; the session, or None."""
    s = hub.session()
    try:
        t = rec.now()
        r = s.get(s.url("/hub/login"), timeout=120)
        rec.step(phase, "login_page", t, r.status_code == 200)
        if r.status_code != 200:
            rec.error(f"login_page:{r.status_code}")
            return None
        t = rec.now()
        r = retrying(
            rec,
            "sign_in",
            lambda: s.post_form(
                "/hub/login",
                {"username": name, "password": password},
                allow_redirects=False,
                timeout=300,
            ),
        )
        ok = r.status_code == 302
        rec.step(phase, "sign_in", t, ok)
        if not ok:
            rec.error(f"sign_in:{r.status_code}")
            return None
        s.username = name
        return s
    except requests.RequestException as e:
        rec.error(f"sign_in:{type(e).__name__}")
        return None


def storm(hub, rec, phase, accounts: dict, concurrency: int) -> tuple[float, dict]:
    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        sessions = dict(
            zip(
                accounts,
                pool.map(lambda n: sign_in(hub, rec, phase, n, accounts[n]), accounts),
                strict=True,
            )
        )
    return time.monotonic() - t0, sessions


def server_model(s, name):
    r = s.api("GET", f"/users/{name}", timeout=60)
    r.raise_for_status()
    return r.json()["servers"].get("")


class SpawnFailed(Exception):
    """The hub gave up on a start (e.g. its start_timeout ran out)."""


def ready_or_failed(s, name) -> bool:
    model = server_model(s, name)
    if model is None:  # neither pending nor ready: the start failed
        raise SpawnFailed(name)
    return bool(model.get("ready"))


def journey(hub, rec, phase, s) -> str | None:
    """Spawn, wait, open through the proxy, kernel + cell; the user's token, or None."""
    name = s.username
    try:
        t = rec.now()
        r = retrying(rec, "spawn", lambda: s.api("POST", f"/users/{name}/server", timeout=300))
        rec.step(phase, "spawn_request", t, r.status_code in (201, 202))
        if r.status_code not in (201, 202):
            rec.error(f"spawn:{r.status_code}")
            return None
        wait_for(lambda: ready_or_failed(s, name), 900, interval=0.5, what=f"{name}'s server")
        rec.step(phase, "spawn_to_ready", t)
        t2 = rec.now()
        # the server's page through the proxy with the cookie: the OAuth redirect to the
        # hub and back sets the server's own cookie; then its API answers with it
        page = s.get(s.url(f"/user/{name}/"), timeout=120)
        r = s.get(s.url(f"/user/{name}/api/status"), timeout=120)
        ok = page.status_code == 200 and r.status_code == 200 and "started" in r.json()
        rec.step(phase, "open_through_proxy", t2, ok)
        if not ok:
            rec.error(f"open_through_proxy:{page.status_code}/{r.status_code}")
            return None
        rec.step(phase, "ready_through_proxy", t)
        r = s.api("POST", f"/users/{name}/tokens", json={"note": "bench"}, timeout=60)
        r.raise_for_status()
        token = r.json()["token"]
        t = rec.now()
        out = run_code(hub.url, token, name, CELL, timeout=300)
        ok = out["status"] == "ok" and out["stdout"].strip() == "42"
        rec.step(phase, "kernel_and_cell", t, ok)
        if not ok:
            rec.error("kernel_and_cell:wrong output")
            return None
        return token
    except SpawnFailed:
        rec.error("spawn:failed to start")
        return None
    except (requests.RequestException, TimeoutError, ValueError, KeyError) as e:
        rec.error(f"journey:{type(e).__name__}")
        return None


def stop(hub, rec, phase, s) -> bool:
    name = s.username
    try:
        t = rec.now()
        r = s.api("DELETE", f"/users/{name}/server", timeout=300)
        if r.status_code not in (202, 204):
            rec.error(f"stop:{r.status_code}")
            return False
        wait_for(lambda: server_model(s, name) is None, 300, interval=0.5, what="stop")
        rec.step(phase, "stop", t)
        return True
    except (requests.RequestException, TimeoutError) as e:
        rec.error(f"stop:{type(e).__name__}")
        return False


def burst(hub, rec, admin_token, sessions: list, phase="burst") -> dict:
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(sessions)) as pool:
        tokens = list(pool.map(lambda s: journey(hub, rec, phase, s), sessions))
    ready_s = time.monotonic() - t0
    started = [(s, tok) for s, tok in zip(sessions, tokens, strict=True) if tok]
    # every started server is reachable through the proxy
    reachable = sum(
        token_api(hub.url, tok, "GET", f"/user/{s.username}/api/status").status_code == 200
        for s, tok in started
    )
    # stop every server the burst started, whether its journey ended well or not
    with ThreadPoolExecutor(len(sessions)) as pool:
        stopped = sum(pool.map(lambda s: stop(hub, rec, "stop", s), sessions))
    routes = token_api(hub.url, admin_token, "GET", "/hub/api/proxy").json()
    stale = [path for path in routes if path.startswith("/user/")]
    still_answer = sum(
        token_api(hub.url, tok, "GET", f"/user/{s.username}/api/status").status_code == 200
        for s, tok in started
    )
    return {
        "servers": len(sessions),
        "ready": len(started),
        "ready_s": round(ready_s, 2),
        "reachable": reachable,
        "stopped": stopped,
        "stale_routes": len(stale),
        "stopped_still_answering": still_answer,
    }


# --- one backend ---------------------------------------------------------------------


def hub_config(backend: str, threads: int, names: dict | None, spawn_limit: int) -> dict:
    cfg = {
        "backend": backend,
        "profiles": [LIGHT_PROFILE],
        "culling": {"enabled": False},
        "hub": {"concurrent_spawn_limit": spawn_limit, "active_server_limit": 0},
        "auth": {"password_hash_threads": threads, "throttle_failed_logins": 0},
    }
    if names is not None:
        from dockertest import docker_section

        cfg["docker"] = docker_section(names)
    return cfg


def make_users(hub, admin_token, n: int, concurrency: int) -> dict:
    names = [f"class{i:04d}" for i in range(n)]
    for i in range(0, n, 100):
        r = token_api(hub.url, admin_token, "POST", "/hub/api/users",
                      json={"usernames": names[i : i + 100]})  # fmt: skip
        assert r.status_code == 201, r.text
    password = new_password()  # one for all: each log-in still checks its own hash

    def sign_up(name):
        hub.session().signup(name, password)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(sign_up, names))
    return dict.fromkeys(names, password)


def phase_of(samples, phase):
    return [x["s"] for x in samples if x["phase"] == phase and x["status"] == 200]


def run_backend(backend, args, workdir: Path) -> dict:
    burst_n = args.burst if backend == "local" else args.docker_burst
    names = engine = None
    if backend == "docker":
        from dockertest import docker_names
        from hubtest import docker_engine_with

        engine = docker_engine_with("dlhub/singleuser:0.1.0")
        names = docker_names("dlb", "dlhub-bench")
    baseline = backend == "local" and not args.no_baseline and args.db == "sqlite"
    cfg = hub_config(backend, 0 if baseline else 4, names, args.spawn_limit)
    postgres = None
    if args.db == "postgres":
        from pgtest import PostgresServer

        postgres = PostgresServer().start()
        cfg["hub"]["db_url"] = postgres.url
    hub = RunningHub(workdir / backend, cfg)
    rec = Recorder()
    out: dict = {"backend": backend, "database": args.db}
    try:
        hub.start(timeout=180)
        admin_token = hub.admin().new_token("bench")
        t = time.monotonic()
        accounts = make_users(hub, admin_token, args.users, 8)
        out["setup_s"] = round(time.monotonic() - t, 1)
        print(f"[{backend}] {args.users} users made and signed up in {out['setup_s']} s")
        runs = []
        if baseline:
            runs.append(("storm_event_loop", hub))
        runs.append(("storm", hub))
        prober = monitor = None
        for phase, _ in runs:
            if phase == "storm" and baseline:
                # the same hub and database, restarted with the thread pool (no server
                # has run yet: no account is removed that the burst needs)
                hub.stop(timeout=120)
                hub.config["auth"]["password_hash_threads"] = 4
                hub.config_file.write_text(yaml.safe_dump(hub.config))
                hub.start(timeout=180)
            prober, monitor = Prober(hub.url, rec), HubMonitor(hub.proc.pid, rec)
            prober.phase = monitor.phase = phase
            prober.start(), monitor.start()
            took, sessions = storm(hub, rec, phase, accounts, args.concurrency)
            signed = sum(1 for s in sessions.values() if s)
            out[phase] = {
                "users": len(accounts),
                "signed_in": signed,
                "all_s": round(took, 2),
                "hub_api": stats(phase_of(prober.samples, phase)),
            }
            print(f"[{backend}] {phase}: {signed}/{len(accounts)} in {took:.1f} s; "
                  f"hub API {out[phase]['hub_api']}")  # fmt: skip
            if phase == "storm_event_loop":
                prober.stopping.set(), monitor.stopping.set()
                prober.join(), monitor.join()
                out["samples_event_loop"] = {"prober": prober.samples,
                                             "hub": monitor.samples}  # fmt: skip
        chosen = [s for s in sessions.values() if s][:burst_n]
        prober.phase = monitor.phase = "burst"
        out["burst"] = burst(hub, rec, admin_token, chosen)
        prober.phase = monitor.phase = "after"
        time.sleep(2)
        prober.stopping.set(), monitor.stopping.set()
        prober.join(), monitor.join()
        print(f"[{backend}] burst: {out['burst']}")
        out["samples"] = {"prober": prober.samples, "hub": monitor.samples}
        storm_and_burst = phase_of(prober.samples, "storm") + phase_of(prober.samples, "burst")
        out["hub_api_storm_and_burst"] = stats(storm_and_burst)
        out["hub_api_failed"] = sum(1 for x in prober.samples if x["status"] != 200)
        hub_cpu = [x["cpu_percent"] for x in monitor.samples]
        hub_rss = [x["rss_mb"] for x in monitor.samples]
        out["hub_process"] = {
            "cpu_percent_mean": round(statistics.mean(hub_cpu), 1) if hub_cpu else None,
            "cpu_percent_max": max(hub_cpu, default=None),
            "rss_mb_max": max(hub_rss, default=None),
        }
        out["load_average_max"] = max((x["load1"] for x in monitor.samples), default=None)
        by_step: dict[str, list[float]] = {}
        for x in rec.steps:
            if x["ok"]:
                by_step.setdefault(f"{x['phase']}.{x['step']}", []).append(x["s"])
        out["steps"] = {k: stats(v) for k, v in sorted(by_step.items())}
        out["errors"] = rec.errors
        out["retried_429"] = rec.retried_429
        out["log_tail"] = hub.log().splitlines()[-5:]
    finally:
        hub.stop(timeout=300)
        if postgres is not None:
            postgres.remove()
        if engine is not None:
            from hubtest import remove_docker_objects

            remove_docker_objects(engine, names["prefix"], names["network"])
    return out


def summary(out: dict) -> dict:
    b = out["burst"]
    storm = out["storm"]
    s = {
        "users": storm["users"],
        "sign_in_all_s": storm["all_s"],
        "burst_servers": b["servers"],
        "burst_ready_s": b["ready_s"],
        # every server not ready has its error among out["errors"] (spawn, journey)
        "errors_other_than_429": sum(out["errors"].values())
        + (b["ready"] - b["reachable"])
        + b["stale_routes"]
        + b["stopped_still_answering"],
        "hub_api_p95_s": out["hub_api_storm_and_burst"]["p95_s"],
        "hub_api_p99_s": out["hub_api_storm_and_burst"]["p99_s"],
    }
    if "storm_event_loop" in out:
        before = out["storm_event_loop"]
        s["event_loop_hashing"] = {
            "sign_in_all_s": before["all_s"],
            "hub_api_p95_s": before["hub_api"]["p95_s"],
            "hub_api_p99_s": before["hub_api"]["p99_s"],
        }
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", nargs="+", default=["local", "docker"])
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--docker-burst", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument(
        "--spawn-limit", type=int, default=10, help="hub.concurrent_spawn_limit (default 10)"
    )
    ap.add_argument(
        "--db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the hub's database (postgres: a private server from the system's binaries; "
        "its figures are kept as <backend>-postgres)",
    )
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "load.json"))
    ap.add_argument(
        "--summarize-only",
        action="store_true",
        help="only make the summary at the top of --out again from its details",
    )
    args = ap.parse_args(argv)
    results: dict = {}
    out_path = Path(args.out)
    if args.summarize_only:
        old = json.loads(out_path.read_text())
        summaries = {label: summary(d) for label, d in old["details"].items()}
        doc = {**summaries, "note": NOTE, "details": old["details"]}
        out_path.write_text(json.dumps(doc, indent=1) + "\n")
        return 0
    if out_path.exists():  # keep the other backend's figures when running one
        old = json.loads(out_path.read_text())
        results = {
            "summary": {k: v for k, v in old.items() if k not in ("note", "details")},
            "details": old.get("details", {}),
        }
    with tempfile.TemporaryDirectory(prefix="dlhub-bench-load-") as tmp:
        for backend in args.backend:
            detail = run_backend(backend, args, Path(tmp))
            label = backend if args.db == "sqlite" else f"{backend}-{args.db}"
            results.setdefault("summary", {})[label] = summary(detail)
            results.setdefault("details", {})[label] = {
                **detail,
                "machine": describe(),
                "load_average_at_end": os.getloadavg(),
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "as_root": os.geteuid() == 0,
                "profile": LIGHT_PROFILE,
                "concurrency": args.concurrency,
                "concurrent_spawn_limit": args.spawn_limit,
            }
            doc = {**results["summary"], "note": NOTE, "details": results["details"]}
            out_path.write_text(json.dumps(doc, indent=1) + "\n")
            print(json.dumps(results["summary"][label], indent=1))
    return 0


NOTE = (
    "Measured on a 2-core machine shared with other work at the same time (see each "
    "backend's load_average_max): the figures are noisy and an upper bound."
)


if __name__ == "__main__":
    sys.exit(main())
