"""The scheduler as a JupyterHub service: a JSON API over the policy, authenticated by the hub.

Run by the hub (``python -m gpu_scheduler``) with the platform config in $DLHUB_CONFIG.
Every request carries a hub token (``Authorization: token ...``); the hub says whose it
is and what it may do. Admin endpoints need a token with ``admin:users`` (an admin's own
API token), so the token inside a user's server, even an admin's, cannot reach them.

    GET    api/capacity              GPUs free/total per model, the caller's quota and use
    GET    api/me                    the caller's leases and waiting requests
    DELETE api/requests/SERVER       cancel a wait (?then=cpu: start without GPUs instead)
                                     or stop the caller's server and release its GPUs
    GET    api/admin/state           (admin) every lease, the queue and the orphaned requests
    POST   api/admin/leases/ID/reclaim   (admin) reclaim: stop the server, release its GPUs
    PUT    api/admin/quotas          (admin) {"group": GPUs, ...}
    GET    metrics                   (admin) Prometheus metrics

Only the hub asks for GPUs (``api/hub/requests``, with the secret it shares with the
scheduler), for a server it starts with a GPU profile: a user's token cannot make a lease
(``POST api/requests`` answers 403), so no lease exists for a server that does not exist
or runs without GPUs. The periodic check (:mod:`.reconcile`) releases a lease whose server
does not run with it.

The pages for the browser ("who holds which GPU", the wait page) are in :mod:`.pages`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import uuid
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth, HubAuthenticated, HubOAuth, HubOAuthCallbackHandler
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from tornado import ioloop, web

from . import pages, reconcile, single
from .contract import SECRET_ENV, ContractError, HubRequest, authorization
from .inventory import NodeWatch, api_client, declared, from_kubernetes, from_nvml, utilisation
from .model import Request
from .policy import ORPHAN_GRACE, RequestError, Scheduler
from .report import capacity_view, wait_view
from .state import State
from .store import Store

ADMIN_SCOPE = "admin:users"

log = logging.getLogger("gpu_scheduler")


def key(request) -> tuple[str, str]:
    return request.user, request.server


class BaseHandler(HubAuthenticated, web.RequestHandler):
    """A JSON API endpoint: the caller is who the hub says their token belongs to (no
    cookies), errors are ``{"status", "message"}`` objects."""

    def initialize(self, state: State, hub_auth: HubAuth):
        self.state = state
        self.hub_auth = hub_auth

    def check_xsrf_cookie(self):
        pass  # token-authenticated JSON API; no cookies are accepted

    def write_error(self, status_code, **kwargs):
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    def body(self) -> dict:
        """The request's JSON object (400 if it is not one)."""
        try:
            data = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise web.HTTPError(400, "the request body is not JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the request body must be a JSON object")
        return data

    def user(self) -> dict:
        """The caller's hub user model (403 without a valid token)."""
        user = self.current_user
        if not user:
            raise web.HTTPError(403, "a valid hub token is required")
        return user

    def admin(self) -> dict:
        """The caller's hub user model when their token has ``admin:users`` (else 403)."""
        user = self.user()
        if ADMIN_SCOPE not in set(user.get("scopes", [])):
            raise web.HTTPError(403, "admin only: use an admin's API token")
        return user

    def send(self, data, status=200):
        """Answer ``data`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))


class CapacityHandler(BaseHandler):
    """``GET api/capacity``: GPUs free and total per model, the caller's quota and use."""

    def get(self):
        user = self.user()
        self.send(capacity_view(self.state.scheduler, user["name"], user.get("groups", [])))


class MeHandler(BaseHandler):
    """``GET api/me``: the caller's leases and waiting requests."""

    def get(self):
        name = self.user()["name"]
        s, now = self.state.scheduler, self.state.clock()
        self.send(
            {
                "leases": [
                    self.state.show_lease(x, now) for x in s.leases.values() if x.user == name
                ],
                "waiting": [wait_view(r, s, now) for r in s.waiting() if r.user == name],
            }
        )


#: what a user who asks the scheduler for GPUs directly is told
HUB_ONLY_REQUESTS = (
    "GPUs are leased only to a server the hub starts with a GPU profile: "
    "start your server with such a profile instead of asking the scheduler"
)


class RequestsHandler(BaseHandler):
    """``api/requests``: a user's token cannot ask for GPUs (POST answers 403);
    ``DELETE api/requests/SERVER`` cancels the caller's wait or reclaims their lease.

    :meth:`submit` and :meth:`give_back` are shared with :class:`HubClientHandler`."""

    def post(self):
        self.user()
        raise web.HTTPError(403, HUB_ONLY_REQUESTS)

    def submit(self, asked: HubRequest):
        """Queue the hub's request for GPUs and answer the lease (201) or the place in the
        queue (202); 400 for bad values."""
        now = self.state.clock()
        request = Request(
            id=uuid.uuid4().hex,
            user=asked.user,
            server=asked.server,
            count=asked.count,
            submitted_at=now,
            model=asked.model,
            groups=asked.groups,
            idle_timeout=asked.idle_timeout,
            max_lifetime=asked.max_lifetime,
        )
        s = self.state.scheduler
        try:
            step = self.state.saved(s.submit(request, now))
        except RequestError as e:
            raise web.HTTPError(400, str(e)) from None
        answer = request_status(self.state, request.id, now)
        place = self.state.submitted(request, step)
        if place == "kept":
            log.info("%s/%s asked again and keeps its place in the GPU queue", *key(request))
        elif place == "lost":
            log.info(
                "%s/%s asked again after its place in the GPU queue was given up", *key(request)
            )
        if place is not None:
            # "kept": the place held while the hub was restarted; "lost": given up after
            # gpus.orphan_grace (the hub's progress message says which)
            answer["place"] = place
            answer["orphan_grace_s"] = s.orphan_grace
        self.send(answer, 201 if request.id in s.leases else 202)

    async def delete(self, server):
        await self.give_back(self.user()["name"], server, stop=True)

    async def give_back(self, name: str, server: str, stop: bool = False):
        """Cancel the wait of ``name``'s server, or release its lease. ``stop``: stop the
        server first (a user giving GPUs back must not keep using them)."""
        s = self.state.scheduler
        for request in list(s.queue.values()):
            if (request.user, request.server) == (name, server):
                then = self.get_argument("then", "cancel")
                if then not in ("cancel", "cpu"):
                    raise web.HTTPError(400, "then must be cancel or cpu")
                self.state.withdraw(request.id, then)
                return self.send({"cancelled": request.id, "then": then})
        for lease in list(s.leases.values()):
            if (lease.user, lease.request.server) == (name, server):
                if stop:
                    await self.state.reclaim(lease.id)
                else:
                    self.state.release(lease.id)
                return self.send({"released": lease.id})
        raise web.HTTPError(404, f"server {server!r} of {name} holds no GPUs and waits for none")


def request_status(state: State, request_id: str, now: float, consume=False) -> dict:
    """The lease, the place in the queue, or what the user chose instead of waiting
    (``consume``: forget that choice once told, as the waiting spawn reads it)."""
    s = state.scheduler
    if request_id in s.leases:
        return {"lease": state.show_lease(s.leases[request_id], now)}
    if request_id in s.queue:
        return {"waiting": wait_view(s.queue[request_id], s, now)}
    if request_id in state.withdrawn:
        action = state.withdrawn.pop(request_id) if consume else state.withdrawn[request_id]
        return {"withdrawn": action}
    raise web.HTTPError(404, f"no request {request_id!r}")


class HubClientHandler(RequestsHandler):
    """The hub's own calls, on behalf of a user's spawn, with the secret it shares.

    POST   api/hub/requests              a :class:`.contract.HubRequest`
    GET    api/hub/requests/ID           the lease, or the place in the queue
    DELETE api/hub/servers/USER/SERVER   cancel the wait or release the GPUs
    """

    def get_current_user(self):
        secret = os.environ.get(SECRET_ENV, "")
        given = self.request.headers.get("Authorization", "")
        if not secret or not hmac.compare_digest(given, authorization(secret)):
            raise web.HTTPError(403, "only the hub may use this endpoint")
        return {"name": "hub"}

    def post(self):
        self.user()
        try:
            asked = HubRequest.from_body(self.body())
        except ContractError as e:
            raise web.HTTPError(400, str(e)) from None
        self.submit(asked)

    def get(self, request_id):
        self.user()
        self.send(request_status(self.state, request_id, self.state.clock(), consume=True))

    async def delete(self, name, server=""):
        self.user()
        await self.give_back(name, server)


class HubCapacityHandler(HubClientHandler):
    """GET api/hub/capacity?user=NAME&group=G...: capacity as one user sees it."""

    def get(self):
        self.user()
        name = self.get_argument("user")
        groups = self.get_arguments("group")
        self.send(capacity_view(self.state.scheduler, name, groups))


class AdminStateHandler(BaseHandler):
    """``GET api/admin/state`` (admins): every lease, the queue, quotas, unleased servers."""

    def get(self):
        self.admin()
        s, now = self.state.scheduler, self.state.clock()
        self.send(
            {
                "leases": [self.state.show_lease(x, now) for x in s.leases.values()],
                "waiting": [wait_view(r, s, now) for r in s.waiting()],
                "quotas": s.quotas,
                "default_quota": s.default_quota,
                "unleased_servers": self.state.unleased,
                # waiting starts lost to a hub restart, keeping their place until expires_at
                "orphaned": [
                    {
                        "id": r.id,
                        "user": r.user,
                        "server": r.server,
                        "queued_at": r.place,
                        "orphaned_at": since,
                        "expires_at": since + s.orphan_grace,
                    }
                    for r, since in sorted(s.orphans.values(), key=lambda x: x[0].place)
                ],
            }
        )


class AdminReclaimHandler(BaseHandler):
    """``POST api/admin/leases/ID/reclaim`` (admins): :meth:`.State.reclaim`; 404 if gone."""

    async def post(self, lease_id):
        self.admin()
        if not await self.state.reclaim(lease_id):
            raise web.HTTPError(404, f"no lease {lease_id!r}")
        self.send({"reclaimed": lease_id})


class AdminQuotasHandler(BaseHandler):
    """``PUT api/admin/quotas`` (admins): ``{"group": GPUs}`` merged into the quotas, and
    a scheduling pass at once (a raised quota may grant or take back leases)."""

    def put(self):
        self.admin()
        data = self.body()
        for group, gpus in data.items():
            if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
                raise web.HTTPError(400, f"quota of {group!r} must be a whole number ≥ 0")
        s = self.state.scheduler
        s.quotas.update(data)
        self.state.saved(s.schedule(self.state.clock()))
        self.send({"quotas": s.quotas})


class MetricsHandler(BaseHandler):
    """``GET metrics`` (admins): Prometheus metrics of GPUs, leases and the queue."""

    def get(self):
        self.admin()
        s = self.state.scheduler
        registry = CollectorRegistry()
        total = Gauge("dlhub_gpus_total", "GPUs known", ["model"], registry=registry)
        leased = Gauge("dlhub_gpus_leased", "GPUs in leases", ["model"], registry=registry)
        idle = Gauge(
            "dlhub_gpus_leased_idle",
            "GPUs in leases whose server has had no activity for 5 minutes",
            ["model"],
            registry=registry,
        )
        queue = Gauge("dlhub_gpu_queue_length", "requests waiting", registry=registry)
        now = self.state.clock()
        idle_devices = {
            u for x in s.leases.values() if now - x.last_active >= 300 for u in x.devices
        }
        held = s.leased_devices()
        for device in s.devices.values():
            total.labels(device.model).inc()
            leased.labels(device.model).inc(device.uuid in held)
            idle.labels(device.model).inc(device.uuid in idle_devices)
        queue.set(len(s.queue))
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish(generate_latest(registry) + generate_latest(self.state.registry))


def make_app(state: State, prefix: str, hub_auth: HubAuth, oauth=None) -> web.Application:
    """The JSON API (token auth) and, with ``oauth``, the browser pages.

    ``oauth`` must be ``HubOAuth.instance()``: the OAuth callback handler uses that one."""
    kw = {"state": state, "hub_auth": hub_auth}
    handlers = [
        (prefix + "api/capacity", CapacityHandler, kw),
        (prefix + "api/me", MeHandler, kw),
        (prefix + "api/requests", RequestsHandler, kw),
        (prefix + r"api/requests/([^/]*)", RequestsHandler, kw),
        (prefix + "api/hub/capacity", HubCapacityHandler, kw),
        (prefix + "api/hub/requests", HubClientHandler, kw),
        (prefix + r"api/hub/requests/([^/]+)", HubClientHandler, kw),
        (prefix + r"api/hub/servers/([^/]+)/([^/]*)", HubClientHandler, kw),
        (prefix + "api/admin/state", AdminStateHandler, kw),
        (prefix + r"api/admin/leases/([^/]+)/reclaim", AdminReclaimHandler, kw),
        (prefix + "api/admin/quotas", AdminQuotasHandler, kw),
        (prefix + "metrics", MetricsHandler, kw),
    ]
    settings = {}
    if oauth is not None:
        hub_url = os.environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/"
        page = {"state": state, "hub_auth": oauth, "hub_url": hub_url}
        handlers += [
            (prefix, pages.IndexPage, page),
            (prefix + r"leases/([^/]+)/reclaim", pages.ReclaimPage, page),
            (prefix + r"wait/([^/]*)", pages.WaitPage, page),
            (prefix + "oauth_callback", HubOAuthCallbackHandler),
        ]
        settings["cookie_secret"] = os.urandom(32)
        # the pages' xsrf cookie with the options of HubOAuth's cookies; no script reads
        # it (the forms carry the token)
        settings["xsrf_cookie_kwargs"] = {**oauth.cookie_options, "httponly": True}
    return web.Application(handlers, **settings)


def devices_from_config(cfg: dict):
    """The inventory ``gpus.inventory`` names: declared, this host's NVML, or the cluster
    (read once; outside an event loop)."""
    gpus = cfg["gpus"]
    if gpus["inventory"] == "nvml":
        return from_nvml()
    if gpus["inventory"] == "kubernetes":
        return asyncio.run(from_kubernetes(cfg["kubernetes"]["gpu_product_label"]))
    return declared(gpus["devices"])


def scheduler_from_config(cfg: dict, devices=None) -> Scheduler:
    """The policy for the platform config: its inventory (``devices``, else
    :func:`devices_from_config`), quotas and default quota."""
    gpus = cfg["gpus"]
    if devices is None:
        devices = devices_from_config(cfg)
    return Scheduler(
        devices,
        quotas=gpus["quotas"],
        default_quota=gpus["default_quota"],
        orphan_grace=gpus.get("orphan_grace", ORPHAN_GRACE),
    )


def main() -> None:
    """Run the service as the hub starts it: the config from $DLHUB_CONFIG, the state
    from $DLHUB_GPU_DB_URL (held by this scheduler alone, :mod:`.single`), the API and
    pages, the periodic check and, with the Kubernetes inventory, the watch of the nodes."""
    from hub_config.config import load_platform_config

    logging.basicConfig(level=logging.INFO)
    asyncio.run(serve(load_platform_config()))


async def serve(cfg: dict) -> None:
    """:func:`main` in the event loop, until the process ends."""
    from hub_config.mapping import cookie_options
    from hub_config.single_hub import waits

    log = logging.getLogger("gpu_scheduler")
    # one scheduler per database, before anything reads it (see .single)
    single.hold(os.environ["DLHUB_GPU_DB_URL"], waits(cfg))
    nodes = None
    if cfg["gpus"]["inventory"] == "kubernetes":
        nodes = NodeWatch(await api_client(), cfg["kubernetes"]["gpu_product_label"], log)
        scheduler = scheduler_from_config(cfg, await nodes.list())
    else:
        scheduler = scheduler_from_config(cfg)
    store = Store(os.environ["DLHUB_GPU_DB_URL"])
    store.load(scheduler)
    state = State(scheduler, store, warn_before=cfg["gpus"]["warn_before"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/gpu-scheduler/")
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    # its cookies as the hub's own: SameSite=Lax, and Secure when the hub is served over https
    oauth = HubOAuth.instance(
        cache_max_age=60, cookie_options=cookie_options(cfg["hub"]["bind_url"])
    )
    app = make_app(state, prefix, HubAuth(cache_max_age=60), oauth)
    app.listen(url.port, url.hostname)
    api_url = os.environ["JUPYTERHUB_API_URL"]
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    every = cfg["gpus"]["check_every"]
    utilisation_of = utilisation if cfg["gpus"]["inventory"] == "nvml" else None
    gpu_profiles = {p["name"]: p["gpus"] for p in cfg["profiles"]}
    default = next((p for p in cfg["profiles"] if p["default"]), cfg["profiles"][0])
    gpu_profiles[None] = default["gpus"]  # a server started without choosing

    async def round_():
        try:
            await reconcile.check(
                state,
                api_url,
                token,
                log,
                utilisation=utilisation_of,
                gpu_profiles=gpu_profiles,
            )
        except Exception:
            log.exception("Checking leases against the hub failed")

    ioloop.PeriodicCallback(round_, every * 1000).start()
    ioloop.IOLoop.current().add_callback(round_)
    if nodes is None:
        await asyncio.Event().wait()  # serve until the process ends
    nodes.on_change = state.set_devices
    await nodes.run()  # follow the nodes (and serve) until the process ends
