"""A start waiting in the GPU queue and a hub killed (``kill -9``): the place is kept.

One declared GPU, held by alice's server; carol then dave wait for it. The hub is killed
and started again: JupyterHub keeps no start in progress, so both starts are gone, and the
scheduler's first check orphans both requests (out of the queue, nothing granted). Dave
starts again first and is first in the queue; then carol starts again and takes back her
place ahead of him, her progress page saying "you kept your place in the GPU queue
(position 1)". A place past ``gpus.orphan_grace`` is given up
(tests/unit/test_scheduler_orphans.py).
"""

import signal

import pytest
from test_gpu_spawn import progress_messages

from gputest import SchedulerClient, gpu_hub_config
from hubtest import start_server, stop_server, token_api, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(hub_factory):
    profiles = [{"name": "gpu", "display_name": "One GPU", "gpus": 1, "default": True}]
    config = {**gpu_hub_config(profiles, count=1, check_every=2), "culling": {"enabled": False}}
    return hub_factory(config, name="gpuqueue")


def waiting(hub, token):
    state = SchedulerClient(hub).state(token)
    return [(w["user"], w["position"], w["queued_at"]) for w in state["waiting"]]


def test_queued_users_keep_their_places_across_a_hub_kill(hub):
    admin = hub.admin()
    tokens = {"admin": admin.new_token("admin")}
    for name in ("alice", "carol", "dave"):
        tokens[name] = hub.approved_user(admin, name).new_token("queue")
    start_server(hub.url, tokens["alice"], "alice")
    for user in ("carol", "dave"):
        r = token_api(hub.url, tokens[user], "POST", f"/hub/api/users/{user}/server", json={})
        assert r.status_code == 202, r.text
        wait_for(
            lambda u=user: u in [w[0] for w in waiting(hub, tokens["admin"])],
            30,
            what=f"{user} in the queue",
        )
    before = waiting(hub, tokens["admin"])
    assert [(u, p) for u, p, _ in before] == [("carol", 1), ("dave", 2)]

    hub.stop(sig=signal.SIGKILL)
    hub.start()
    wait_for(
        lambda: SchedulerClient(hub).api(tokens["admin"], "GET", "admin/state").status_code == 200,
        60,
        what="the GPU scheduler after the hub's restart",
    )
    # the first check finds both starts gone: orphaned, out of the queue, nothing granted
    wait_for(lambda: waiting(hub, tokens["admin"]) == [], 30, what="the starts found gone")
    state = SchedulerClient(hub).state(tokens["admin"])
    assert [x["user"] for x in state["leases"]] == ["alice"]

    for user in ("dave", "carol"):  # dave first
        r = token_api(hub.url, tokens[user], "POST", f"/hub/api/users/{user}/server", json={})
        assert r.status_code == 202, r.text
        wait_for(
            lambda u=user: u in [w[0] for w in waiting(hub, tokens["admin"])],
            30,
            what=f"{user} in the queue again",
        )
    # carol is back ahead of dave, each with the time of their first ask
    assert waiting(hub, tokens["admin"]) == before
    seen = progress_messages(
        hub, tokens["carol"], "carol", "you kept your place in the GPU queue (position 1)"
    )
    assert seen
    assert "carol kept its place in the GPU queue" in hub.log()
    assert "Keeping the place of carol/ in the GPU queue" in hub.log()

    # the GPU goes to carol when alice stops, as it would have before the restart
    stop_server(hub.url, tokens["alice"], "alice")

    def ready(user):
        model = token_api(hub.url, tokens[user], "GET", f"/hub/api/users/{user}").json()
        return model["servers"].get("", {}).get("ready")

    wait_for(lambda: ready("carol"), 60, what="carol's server with the freed GPU")
    assert [(u, p) for u, p, _ in waiting(hub, tokens["admin"])] == [("dave", 1)]
    for user in ("carol", "dave"):
        stop_server(hub.url, tokens[user], user)
