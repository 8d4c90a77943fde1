"""The hub side of GPU scheduling: a spawn asks the scheduler for GPUs first.

A server whose profile asks for GPUs gets a lease before it starts: granted at once, or
after waiting in the queue, with "Waiting for a GPU: position N, about M min" on the
spawn progress page meanwhile. The lease's devices are handed to the server by the
backend (``assign_gpus``); the lease is given back when the server stops or fails to
start.
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import time
from urllib.parse import quote

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Float, List, TraitError, Unicode, validate

from gpu_scheduler.contract import HubRequest, authorization

from .spawner_contract import SpawnerContract

#: a GPU start while the scheduler does not answer (it is started again within seconds)
SCHEDULER_DOWN = (
    "The GPU scheduler is not answering (it is being started again); try again in a minute."
)


def waiting_message(waiting: dict, place: str | None = None, grace: float = 0) -> str:
    """The place in the queue and the expected wait; ``place``: how the request entered
    the queue, as the scheduler said (``"kept"``: it took back its place from before the
    hub restarted; ``"lost"``: that place was given up after ``grace`` seconds)."""
    minutes = max(1, math.ceil(waiting["eta_s"] / 60))
    if place == "kept":
        return (
            "Waiting for a GPU: you kept your place in the GPU queue "
            f"(position {waiting['position']}), about {minutes} min"
        )
    message = f"Waiting for a GPU: position {waiting['position']}, about {minutes} min"
    if place == "lost":
        message += (
            " (your earlier place in the queue was given up: the server was not started "
            f"again within {max(1, round(grace / 60))} min of the hub's restart)"
        )
    return message


def waiting_html(waiting: dict, wait_page: str, place: str | None = None, grace=0) -> str:
    """The progress page's line: the place in the queue and a link to the choices."""
    return (
        f"{html.escape(waiting_message(waiting, place, grace))} · "
        f'<a href="{html.escape(wait_page)}" id="dlhub-gpu-wait">'
        "Stop waiting or start on CPU instead</a>"
    )


class GpuMixin(SpawnerContract):
    """Ask the GPU scheduler for the profile's GPUs before starting (mixed into spawners).

    Needs from the others: the chosen ``profile`` (declared on
    :class:`~hub_config.spawner_contract.SpawnerContract`, set by ProfilesMixin), the
    JupyterHub spawner's ``user``, ``name``, ``environment``, ``start``/``stop`` and its
    state methods (``get_state``/``load_state``/``clear_state``, each calling
    ``super()``), and ``assign_gpus(devices)`` from the concrete spawner class (the
    backend's way to hand exactly these GPUs to the server).

    Gives the others: ``gpu_capacity()`` (shown on ProfilesMixin's form), the lease in
    the spawner state, and the queue position in ``progress()``.

    Order of the bases: ``ProfilesMixin, GpuMixin, VolumesMixin[, ListeningMixin],
    <JupyterHub spawner>`` -- after ProfilesMixin (whose ``apply_user_options`` has set
    the profile before ``start``), before the JupyterHub spawner, whose ``start`` runs
    only once the lease is granted.
    """

    gpu_scheduler_url = Unicode(
        "",
        help="""The GPU scheduler's base URL as the hub reaches it, e.g.
        ``http://127.0.0.1:8092/``.

        Empty (the default): GPU scheduling is off; servers get no GPU at all. Set from
        the platform config's ``gpu`` section.
        """,
    ).tag(config=True)

    gpu_secret = Unicode(
        "",
        help="""The secret the hub shares with the GPU scheduler (sent as
        ``Authorization: dlhub-hub <secret>`` on the scheduler's ``api/hub/`` endpoints).

        Default: empty (set by dlhub from the data dir's secret file; the scheduler
        refuses the hub without it).
        """,
    ).tag(config=True)

    gpu_max_wait = Float(
        3600,
        help="""Seconds a spawn may wait in the GPU queue before it fails (``503``).

        Default 3600 (an hour); 0: a spawn fails unless its GPUs are free at once.
        Must not be negative.
        """,
    ).tag(config=True)

    gpu_poll_interval = Float(
        1.0,
        help="""Seconds between two questions to the scheduler while a spawn waits in
        the GPU queue.

        Default 1.0; must be more than 0 (e.g. 0.2 in tests, 5 for a hub with very many
        waiting spawns).
        """,
    ).tag(config=True)

    gpu_public_prefix = Unicode(
        "/services/gpu-scheduler/",
        help="""Where browsers reach the scheduler's pages, through the proxy: a path
        that starts and ends with ``/``.

        Default ``/services/gpu-scheduler/`` (the hub's base URL followed by the
        service's prefix when the hub runs under a base URL, e.g.
        ``/dlhub/services/gpu-scheduler/``). The spawn page links to its ``wait/``
        page from here.
        """,
    ).tag(config=True)

    @validate("gpu_max_wait")
    def _valid_max_wait(self, proposal):
        if proposal["value"] < 0:
            raise TraitError(f"gpu_max_wait must be 0 or more seconds, not {proposal['value']}.")
        return proposal["value"]

    @validate("gpu_poll_interval")
    def _valid_poll_interval(self, proposal):
        if not proposal["value"] > 0:
            raise TraitError(
                f"gpu_poll_interval must be more than 0 seconds, not {proposal['value']}."
            )
        return proposal["value"]

    @validate("gpu_scheduler_url")
    def _valid_scheduler_url(self, proposal):
        url = proposal["value"]
        if url and not url.startswith(("http://", "https://")):
            raise TraitError(f"gpu_scheduler_url must be empty or an http(s):// URL, not {url!r}.")
        return url

    @validate("gpu_public_prefix")
    def _valid_public_prefix(self, proposal):
        prefix = proposal["value"]
        if not (prefix.startswith("/") and prefix.endswith("/")):
            raise TraitError(f"gpu_public_prefix must start and end with '/', not {prefix!r}.")
        return prefix

    gpu_devices = List(help="UUIDs of the GPUs of the current lease.")
    gpu_lease = Unicode(
        "",
        help="""Id of the current lease; kept in the spawner state, where the scheduler
        reads it (a running server must run with the lease it holds).""",
    )

    _gpu_message = None

    async def _gpu_call(self, method: str, path: str, body: dict | None = None):
        request = HTTPRequest(
            self.gpu_scheduler_url.rstrip("/") + "/" + path,
            method=method,
            headers={"Authorization": authorization(self.gpu_secret)},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        try:
            data = json.loads(response.body or b"{}")
        except ValueError:
            data = {"message": f"the GPU scheduler answered {response.code}"}
        return response.code, data

    def gpus_wanted(self) -> int:
        return int(self.profile.get("gpus", 0))

    def gpu_request(self, count: int) -> HubRequest:
        """What the hub asks the scheduler for: ``count`` GPUs for this server, with its
        profile's idle timeout and lifetime (the body of ``POST api/hub/requests``)."""
        return HubRequest(
            user=self.user.name,
            groups=tuple(g.name for g in self.user.groups),
            server=self.name,
            count=count,
            idle_timeout=self.profile.get("gpu_idle_timeout", 0),
            max_lifetime=self.profile.get("max_lifetime", 0),
        )

    async def acquire_gpus(self, count: int) -> list[str]:
        try:
            code, data = await self._gpu_call(
                "POST", "api/hub/requests", self.gpu_request(count).body()
            )
        except OSError:
            raise web.HTTPError(503, SCHEDULER_DOWN) from None
        if code >= 400:
            raise web.HTTPError(code if code < 500 else 503, data.get("message", ""))
        started = time.monotonic()
        wait_page = f"{self.gpu_public_prefix}wait/{quote(self.name, safe='')}"
        place, grace = data.get("place"), data.get("orphan_grace_s", 0)
        if place == "kept":
            self.log.info("Server %s kept its place in the GPU queue", self._log_name)
        elif place == "lost":
            self.log.warning(
                "Server %s lost its place in the GPU queue (not started again within %s s "
                "of the hub's restart)",
                self._log_name,
                grace,
            )
        while "lease" not in data:
            if "withdrawn" in data:
                self._gpu_message = None
                if data["withdrawn"] == "cpu":
                    # Spawner._log_name ("user" or "user:server"): private to JupyterHub,
                    # checked against 6.1.1 (tests/unit/test_upstream_contract.py)
                    self.log.info("Server %s starts on CPU instead of waiting", self._log_name)
                    return []
                raise web.HTTPError(
                    400, "You stopped waiting for a GPU; the server was not started."
                )
            self._gpu_message = {
                "message": waiting_message(data["waiting"], place, grace),
                "html_message": waiting_html(data["waiting"], wait_page, place, grace),
            }
            if time.monotonic() - started > self.gpu_max_wait:
                await self.release_gpus()
                minutes = round(self.gpu_max_wait / 60)
                raise web.HTTPError(503, f"No GPU became free within {minutes} minutes.")
            await asyncio.sleep(self.gpu_poll_interval)
            request_id = data["waiting"]["id"]
            try:
                code, answer = await self._gpu_call("GET", f"api/hub/requests/{request_id}")
            except OSError:
                # the scheduler is being started again (hub_config.supervisor): its queue
                # is in its database, so the place is kept; ask again at the next poll
                continue
            data = answer
            if code >= 400:
                raise web.HTTPError(503, data.get("message", "the GPU request was lost"))
        self._gpu_message = None
        self.gpu_lease = data["lease"]["id"]
        return [d["uuid"] for d in data["lease"]["devices"]]

    async def gpu_capacity(self) -> dict | None:
        """Free/total GPUs and this user's quota and use; None when unknown."""
        if not self.gpu_scheduler_url:
            return None
        query = "&".join(
            [f"user={quote(self.user.name, safe='')}"]
            + [f"group={quote(g.name, safe='')}" for g in self.user.groups]
        )
        try:
            code, data = await self._gpu_call("GET", f"api/hub/capacity?{query}")
        except OSError:
            return None
        return data if code == 200 else None

    async def release_gpus(self) -> None:
        if not self.gpu_scheduler_url:
            return
        path = f"api/hub/servers/{quote(self.user.name, safe='')}/{quote(self.name, safe='')}"
        try:
            code, data = await self._gpu_call("DELETE", path)
        except OSError as e:
            # the scheduler is down: its next check releases leases of stopped servers
            code, data = 0, str(e)
        if code not in (200, 404):
            self.log.warning("Giving back GPUs of %s failed: %s", self._log_name, data)
        self.gpu_devices = []
        self.gpu_lease = ""

    def get_state(self):
        """The lease and its devices, so that a restarted hub still gives them back."""
        state = super().get_state()
        if self.gpu_lease:
            state["gpu_lease"] = self.gpu_lease
        if self.gpu_devices:
            state["gpu_devices"] = list(self.gpu_devices)
        return state

    def load_state(self, state):
        super().load_state(state)
        self.gpu_lease = state.get("gpu_lease", "")
        self.gpu_devices = list(state.get("gpu_devices", []))

    def clear_state(self):
        super().clear_state()
        self.gpu_lease = ""
        self.gpu_devices = []

    def assign_gpus(self, devices: list[str]) -> None:
        """Hand exactly these GPUs to the server (backend specific)."""
        raise NotImplementedError

    async def start(self):
        count = self.gpus_wanted()
        if self.gpu_scheduler_url and count:
            self.gpu_devices = await self.acquire_gpus(count)
            self.log.info("Server %s got GPUs %s", self._log_name, self.gpu_devices)
        try:
            if self.gpu_scheduler_url:
                # a server without a lease sees no GPU at all
                self.assign_gpus(list(self.gpu_devices))
                # JupyterLab asks the scheduler, with the server's token, for GPU notices
                self.environment = {
                    **self.environment,
                    "DLHUB_GPU_SCHEDULER_URL": self.gpu_scheduler_url,
                }
            return await super().start()
        except BaseException:
            if count:
                await self.release_gpus()
            raise

    async def stop(self, now=False):
        # asked before stopping: a backend's stop may clear the state (a local process
        # that is gone is forgotten by its poll)
        holding = bool(self.gpu_devices or self.gpu_lease or self.gpus_wanted())
        try:
            return await super().stop(now=now)
        finally:
            if holding:
                await self.release_gpus()

    def _gpu_wait_over(self) -> bool:
        """Whether the spawn is past the GPU queue (a subclass may know it sooner)."""
        # JupyterHub's public view of its spawn flag: "spawn" from the spawn's start
        # until the server is up or has failed
        return self.pending != "spawn"

    async def progress(self):
        """The place in the GPU queue, for as long as the spawn waits there."""
        shown = None
        while not self._gpu_wait_over():
            message = self._gpu_message
            if message and message != shown:
                shown = message
                yield {"progress": 10, **message}
            await asyncio.sleep(0.5)
