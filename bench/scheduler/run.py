"""The GPU scheduling policy: decision latency, and a notebook-workload trace simulation.

    .venv/bin/python bench/scheduler/run.py [--out bench/results/scheduler.json] [--seed 1]

1. Decision latency: 1024 devices all leased and 1000 requests queued; each measured
   decision is one lease released followed by a full scheduling pass (what the service
   does when a server stops), and one new request submitted.

2. Trace simulation, minute by minute over three working days, of the same generated
   notebook workload under three policies, all driven through the real
   :class:`gpu_scheduler.policy.Scheduler`:

   - ``dlhub``: per-group quotas with borrowing of idle capacity, a GPU idle for 15
     minutes is reclaimed (its server stopped), servers live at most 8 hours;
   - ``fifo_hold_1h``: first come first served; a GPU is held until the server has been
     idle for an hour and the idle culler stops it (a z2jh-style deployment);
   - ``fcfs_no_reclaim``: first come first served, a GPU is held until its user stops
     the server, which some users never do.

   The workload generator: USERS users in three groups (quota 4, 2, 2 GPUs per user
   ... see GROUPS); each user starts sessions as a Poisson process during working hours
   (9:00-18:00) at SESSION_RATE per hour; a session is a run of phases, each an active
   stretch (GPU busy, exponential with mean ACTIVE_MEAN minutes) followed by an idle
   stretch (reading, writing, meetings: exponential, mean IDLE_MEAN); the number of phases
   is geometric with mean PHASES. At the end of a session the user stops the server with
   probability STOP_PROB and otherwise just leaves. A user whose GPU was reclaimed while
   idle asks again when their next active stretch starts (and waits again if they must).

Metrics per policy: ``gpu_utilisation_while_queued`` (busy GPUs / all GPUs, averaged over
the minutes when someone waits), ``idle_held_gpu_hours`` (GPU-hours held by servers
whose GPU was not busy), ``wait_p50_min`` / ``wait_p95_min`` (minutes from asking to
getting GPUs, every request counted, unfinished waits counted up to the end),
``jain_fairness`` (Jain's index over users of active GPU-minutes obtained / wanted).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "services"))
sys.path.insert(0, str(REPO / "bench"))

from machine import describe  # noqa: E402

from gpu_scheduler.model import Device, Request  # noqa: E402
from gpu_scheduler.policy import Scheduler  # noqa: E402

GPUS = 12
USERS = 48
GROUPS = {"research": 4, "course": 2, "staff": 2}
SESSION_RATE = 0.25  # sessions per user per working hour
ACTIVE_MEAN = 25.0  # minutes
IDLE_MEAN = 35.0  # minutes
PHASES = 3.0
STOP_PROB = 0.35
DAYS = 3


# --- decision latency ---------------------------------------------------------------------


def decision_latency(seed: int) -> dict:
    rng = random.Random(seed)
    models = ["A100", "H100", "L4", "T4"]
    devices = [Device(f"GPU-{m}-{i}", m, 0, i) for m in models for i in range(256)]
    s = Scheduler(devices, quotas={f"g{i}": 64 for i in range(8)}, default_quota=8)
    n = 0

    def new_request(now):
        nonlocal n
        n += 1
        return Request(
            f"r{n}",
            f"user{rng.randrange(400)}",
            f"s{n}",
            rng.choice([1, 1, 1, 2]),
            now,
            model=rng.choice([None, *models]),
            groups=(f"g{rng.randrange(8)}",),
        )

    now = 0.0
    while len(s.leases) < 700 or s.free_devices():
        now += 1
        s.submit(new_request(now), now)
        if n > 5000:
            break
    while len(s.queue) < 1000:
        now += 1
        s.submit(new_request(now), now)
    samples = []
    for _ in range(300):
        now += 1
        lease_id = rng.choice(list(s.leases))
        start = time.perf_counter()
        s.release(lease_id, now)
        s.submit(new_request(now), now)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50": round(statistics.median(samples), 3),
        "p99": round(samples[int(0.99 * (len(samples) - 1))], 3),
        "devices": len(devices),
        "queued": len(s.queue),
        "decisions": len(samples),
    }


# --- trace simulation ---------------------------------------------------------------------


@dataclass
class User:
    name: str
    group: str
    sessions: list[tuple[int, list[tuple[int, int]]]] = field(default_factory=list)
    wanted: int = 0  # active minutes wanted
    served: int = 0  # active minutes with a GPU


def generate(seed: int) -> list[User]:
    rng = random.Random(seed)
    users = []
    names = list(GROUPS)
    for i in range(USERS):
        user = User(f"user{i}", names[i % len(names)])
        for day in range(DAYS):
            t = day * 1440 + 9 * 60
            while True:
                t += rng.expovariate(SESSION_RATE / 60)
                if t >= day * 1440 + 18 * 60:
                    break
                phases = []
                while True:
                    active = max(1, round(rng.expovariate(1 / ACTIVE_MEAN)))
                    idle = max(1, round(rng.expovariate(1 / IDLE_MEAN)))
                    phases.append((active, idle))
                    user.wanted += active
                    if rng.random() < 1 / PHASES:
                        break
                user.sessions.append((int(t), phases))
                t += sum(a + b for a, b in phases)
        users.append(user)
    return users


@dataclass
class Session:
    user: User
    phases: list[tuple[int, int]]
    phase: int = 0
    left: int = 0  # minutes left in the current stretch
    active: bool = True
    holding: str | None = None  # lease id
    waiting: str | None = None  # request id
    asked_at: int = 0
    done: bool = False  # the user has left; the server may still run
    stops: bool = False


POLICIES = {
    "dlhub": {"quotas": GROUPS, "default_quota": 0, "idle": 15, "lifetime": 8 * 60},
    "fifo_hold_1h": {"quotas": {}, "default_quota": GPUS, "idle": 60, "lifetime": 0},
    "fcfs_no_reclaim": {"quotas": {}, "default_quota": GPUS, "idle": 0, "lifetime": 0},
}


def simulate(policy: str, users: list[User], seed: int) -> dict:
    cfg = POLICIES[policy]
    rng = random.Random(seed)
    for user in users:
        user.served = 0
    devices = [Device(f"GPU-{i}", "A100", 0, i) for i in range(GPUS)]
    s = Scheduler(devices, quotas=cfg["quotas"], default_quota=cfg["default_quota"])
    starts = sorted(
        ((t, u, phases) for u in users for t, phases in u.sessions), key=lambda x: x[0]
    )
    live: list[Session] = []
    by_lease: dict[str, Session] = {}
    by_request: dict[str, Session] = {}
    waits: list[float] = []
    queued_util: list[float] = []
    idle_held = 0
    n = 0
    horizon = DAYS * 1440

    def ask(session: Session, now: int):
        nonlocal n
        n += 1
        rid = f"r{n}"
        session.waiting, session.asked_at = rid, now
        by_request[rid] = session
        request = Request(
            rid,
            session.user.name,
            f"{session.user.name}-{n}",
            1,
            now,
            groups=(session.user.group,),
            idle_timeout=cfg["idle"] * 60,
            max_lifetime=cfg["lifetime"] * 60,
        )
        apply(s.submit(request, now * 60), now)

    def apply(step, now: int):
        for lease in step.granted:
            session = by_request.pop(lease.id)
            session.waiting, session.holding = None, lease.id
            by_lease[lease.id] = session
            waits.append(now - session.asked_at)
        for lease in step.take_back:
            stop(lease.id, now)

    def stop(lease_id: str, now: int):
        session = by_lease.pop(lease_id)
        session.holding = None
        apply(s.release(lease_id, now * 60), now)

    i = 0
    for now in range(horizon):
        while i < len(starts) and starts[i][0] <= now:
            _, user, phases = starts[i]
            i += 1
            session = Session(user, list(phases), left=phases[0][0])
            session.stops = rng.random() < STOP_PROB
            live.append(session)
            ask(session, now)
        # the minute passes for every session
        for session in list(live):
            if session.done:
                continue
            if session.waiting:
                continue  # the user waits; their work waits with them
            if session.active:
                if session.holding is None:
                    ask(session, now)  # reclaimed meanwhile: ask again
                    continue
                session.user.served += 1
                s.touch(session.holding, now * 60)
            session.left -= 1
            if session.left > 0:
                continue
            if session.active:
                session.active = False
                session.left = session.phases[session.phase][1]
            else:
                session.phase += 1
                if session.phase >= len(session.phases):
                    session.done = True
                    if session.stops and session.holding:
                        stop(session.holding, now)
                    continue
                session.active = True
                session.left = session.phases[session.phase][0]
        # reclaim by policy (idle GPU, maximum lifetime)
        if cfg["idle"] or cfg["lifetime"]:
            for lease, _why in s.due(now * 60):
                if lease.id in by_lease:
                    stop(lease.id, now)
        # accounting for this minute
        busy = sum(1 for x in by_lease.values() if x.active and not x.done and not x.waiting)
        held = len(by_lease)
        idle_held += held - busy
        if s.queue:
            queued_util.append(busy / GPUS)
        live = [x for x in live if not (x.done and x.holding is None)]
    for session in by_request.values():
        waits.append(horizon - session.asked_at)
    ratios = [u.served / u.wanted for u in users if u.wanted]
    jain = sum(ratios) ** 2 / (len(ratios) * sum(r * r for r in ratios))
    waits.sort()
    return {
        "gpu_utilisation_while_queued": round(statistics.fmean(queued_util), 3)
        if queued_util
        else None,
        "idle_held_gpu_hours": round(idle_held / 60, 1),
        "wait_p50_min": round(statistics.median(waits), 1),
        "wait_p95_min": round(waits[int(0.95 * (len(waits) - 1))], 1),
        "jain_fairness": round(jain, 3),
        "requests": len(waits),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scheduler.json"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    latency = decision_latency(args.seed)
    print(f"decision latency: p50 {latency['p50']} ms, p99 {latency['p99']} ms", flush=True)
    users = generate(args.seed)
    trace = {}
    for policy in POLICIES:
        trace[policy] = simulate(policy, users, args.seed)
        print(policy, trace[policy], flush=True)
    result = {
        "decision_latency_ms": latency,
        "trace": trace,
        "workload": {
            "gpus": GPUS,
            "users": USERS,
            "group_quotas": GROUPS,
            "days": DAYS,
            "sessions": sum(len(u.sessions) for u in users),
            "active_gpu_hours_wanted": round(sum(u.wanted for u in users) / 60, 1),
        },
        "policies": POLICIES,
        "machine": describe(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
