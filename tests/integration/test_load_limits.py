"""The hub under a class's load, through a real hub and proxy (local backend):

- log-ins check passwords in a thread pool: during a storm of concurrent log-ins the
  hub's API keeps answering, right passwords get in and wrong ones do not (the timings
  are printed, not asserted: bench/load measures them);
- the spawn limits: one start too many is ``429`` with ``Retry-After`` and one sentence
  saying which limit and when to try again, to API clients and on the browser's page;
- the hub's SQLite database is in WAL mode.
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time

import pytest
import requests

from hubtest import new_password, start_server, token_api, wait_for

pytestmark = pytest.mark.integration

STORM = 16


@pytest.fixture(scope="module")
def hub(hub_factory):
    return hub_factory(
        {
            "hub": {"concurrent_spawn_limit": 1, "active_server_limit": 2},
            "auth": {"password_hash_threads": 2},
            "culling": {"enabled": False},
        }
    )


@pytest.fixture(scope="module")
def admin_token(hub):
    return hub.admin().new_token("load limits")


@pytest.fixture(scope="module")
def users(hub, admin_token):
    """``STORM + 4`` users with passwords: made through the API, then signed up (known
    users are approved at once)."""
    names = [f"load{i}" for i in range(STORM + 4)]
    r = token_api(hub.url, admin_token, "POST", "/hub/api/users", json={"usernames": names})
    assert r.status_code == 201, r.text
    accounts = {}
    for name in names:
        password = new_password()
        hub.session().signup(name, password)
        accounts[name] = password
    return accounts


def test_the_hub_database_is_in_wal_mode(hub):
    with sqlite3.connect(hub.data_dir / "jupyterhub.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # the hub writes through the log: the database answers while it runs
        assert db.execute("SELECT count(*) FROM users").fetchone()[0] >= 1
    db.close()


def test_the_api_answers_during_a_log_in_storm(hub, users):
    names = list(users)[:STORM]
    wrong = set(names[::4])  # every fourth gives a wrong password
    results: dict[str, int] = {}
    probes: list[tuple[float, int]] = []
    storming = threading.Event()

    def probe():
        while not storming.is_set():
            time.sleep(0.05)
        with requests.Session() as s:
            while storming.is_set():
                t0 = time.monotonic()
                status = s.get(f"{hub.url}/hub/api/", timeout=30).status_code
                probes.append((time.monotonic() - t0, status))
                time.sleep(0.05)

    def log_in(name):
        s = hub.session()
        s.get(s.url("/hub/login"))
        password = users[name] + ("-wrong" if name in wrong else "")
        r = s.post_form(
            "/hub/login", {"username": name, "password": password}, allow_redirects=False
        )
        results[name] = r.status_code

    prober = threading.Thread(target=probe)
    prober.start()
    threads = [threading.Thread(target=log_in, args=(name,)) for name in names]
    storming.set()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    took = time.monotonic() - t0
    storming.clear()
    prober.join(60)

    assert {n: s for n, s in results.items() if n not in wrong} == {
        n: 302 for n in names if n not in wrong
    }
    assert {n: s for n, s in results.items() if n in wrong} == {n: 200 for n in wrong}
    assert probes and {status for _, status in probes} == {200}
    latencies = sorted(t for t, _ in probes)
    print(
        f"\n{STORM} concurrent log-ins took {took:.2f} s; the hub API answered "
        f"{len(latencies)} probes meanwhile, median {statistics.median(latencies):.3f} s, "
        f"slowest {latencies[-1]:.3f} s"
    )


def server_state(hub, token, user):
    model = token_api(hub.url, token, "GET", f"/hub/api/users/{user}").json()
    return model["servers"].get("")


def test_the_spawn_limits_answer_429_with_retry_after(hub, users, admin_token):
    a, b, c = list(users)[STORM : STORM + 3]
    # a's start, in a thread: the POST answers once the server is up or after 10 s
    answered: dict[str, int] = {}
    starting = threading.Thread(
        target=lambda: answered.setdefault(
            a,
            token_api(hub.url, admin_token, "POST", f"/hub/api/users/{a}/server").status_code,
        )
    )
    starting.start()
    try:
        wait_for(
            lambda: (server_state(hub, admin_token, a) or {}).get("pending") == "spawn",
            30,
            interval=0.05,
            what=f"{a}'s server to be starting",
        )
        # the API: one start too many while one is starting (concurrent_spawn_limit: 1)
        r = token_api(hub.url, admin_token, "POST", f"/hub/api/users/{b}/server")
        assert r.status_code == 429, r.text
        assert 30 <= int(r.headers["Retry-After"]) <= 60
        message = r.json()["message"]
        assert message.startswith("1 servers are starting right now, as many as this hub")
        assert f"try again in {r.headers['Retry-After']} seconds" in message
        # the browser: b's own spawn page says the same
        s = hub.session()
        s.login(b, users[b])
        page = s.get(s.url(f"/hub/spawn/{b}"))
        assert page.status_code == 429
        assert int(page.headers["Retry-After"]) >= 30
        assert "servers are starting right now" in page.text
        assert "Too many users trying to log in" not in page.text
    finally:
        starting.join(120)
    assert answered[a] in (201, 202)
    wait_for(
        lambda: (server_state(hub, admin_token, a) or {}).get("ready"),
        120,
        what=f"{a}'s server to be ready",
    )
    # with a running, b starts; then two run (active_server_limit: 2) and c is refused
    start_server(hub.url, admin_token, b)
    r = token_api(hub.url, admin_token, "POST", f"/hub/api/users/{c}/server")
    assert r.status_code == 429, r.text
    assert r.headers["Retry-After"] == "120"
    assert r.json()["message"].startswith("This hub is running 2 servers, as many as it may")
    s = hub.session()
    s.login(c, users[c])
    page = s.get(s.url(f"/hub/spawn/{c}"))
    assert page.status_code == 429 and page.headers["Retry-After"] == "120"
    assert "please try again in 2 minutes" in page.text
    assert "hub.active_server_limit" in page.text
    # both servers that run answer through the proxy; c has none
    for user in (a, b):
        r = token_api(hub.url, admin_token, "GET", f"/user/{user}/api/status")
        assert r.status_code == 200, (user, r.status_code)
    assert server_state(hub, admin_token, c) is None
