"""The admin page "who holds which GPU" as the browser gets it, rendered from a State on
an injected clock: the utilisation NVML last reported and the early warning (pure)."""

import re

from gpu_scheduler.model import Device, Request
from gpu_scheduler.pages import index_values, render
from gpu_scheduler.policy import Scheduler
from gpu_scheduler.state import State

ADMIN = {"name": "admin", "admin": True, "groups": []}


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def admin_row(state: State) -> str:
    """The lease's row in the admin table (#leases) of the page as rendered now."""
    html = render(
        "index.html",
        user=ADMIN,
        hub_url="/hub/",
        prefix="/services/gpu-scheduler/",
        xsrf="",
        **index_values(state, ADMIN),
    )
    table = html[html.index('<table id="leases">') :]
    return re.search(r'<tr class="lease".*?</tr>', table, re.S).group(0)


def test_admin_page_shows_utilisation_and_the_early_warning():
    clock = Clock()
    devices = [Device("GPU-0", "A100", 40960, 0), Device("GPU-1", "A100", 40960, 1)]
    state = State(Scheduler(devices, default_quota=1), None, clock=clock, warn_before=300)
    request = Request("r1", "alice", "", 1, clock(), idle_timeout=600)
    state.saved(state.scheduler.submit(request, clock()))
    uuid = state.scheduler.leases["r1"].devices[0]

    # no utilisation known yet, the reclaim 600 s away: "—" and no highlight
    row = admin_row(state)
    assert "—" in row and 'class="warn"' not in row

    # NVML reports 87 % (the check sets it) but the lease stays idle for the hub
    state.utilisation = {uuid: 87}
    clock.now = 1000 + 600 - 301
    row = admin_row(state)
    assert "87%" in row and 'class="warn"' not in row

    # within warn_before of the idle reclaim: the reclaim time is highlighted
    clock.now = 1000 + 600 - 300
    row = admin_row(state)
    assert "87%" in row
    warned = re.search(r'<span class="warn">([^<]*)</span>', row)
    assert warned and warned.group(1) == "1970-01-01 00:26 UTC (idle)"
