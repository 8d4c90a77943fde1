"""Failed log-ins per client address, and which address a request comes from (pure).

:class:`FailureWindow` remembers failures per key for ``window`` seconds (a sliding
window): a key with ``limit`` remembered failures is refused until the oldest of them is
``window`` seconds old. It keeps at most ``max_keys`` keys (the least recently failed go
first), so a flood of addresses cannot grow it without bound. The clock is a function,
so tests travel in time.

:func:`client_address` picks the address to count from a request's
``X-Forwarded-For`` header: the proxy in front of the hub (configurable-http-proxy)
appends the address that connected to it, so the right-most entry is the one a client
cannot choose. Entries added by proxies the operator trusts (``trusted``, e.g. an
Ingress controller in front of the hub's proxy) are skipped from the right.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable


class FailureWindow:
    """At most ``limit`` failures per key in any ``window`` seconds."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ):
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = self.clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may try again; 0 when it may now."""
        if self.limit <= 0:
            return 0
        times = self._recent(key)
        if times is None or len(times) < self.limit:
            return 0
        return max(1, math.ceil(times[0] + self.window - self.clock()))

    def fail(self, key: str) -> None:
        """Count a failure of ``key``."""
        if self.limit <= 0:
            return
        times = self._recent(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.limit)
        times.append(self.clock())
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)


def parse_networks(items: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Addresses or networks (``10.0.0.0/8``) as networks; ValueError names a bad item."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as e:
            raise ValueError(f"{item!r} is not an IP address or network: {e}") from None
    return networks


def _trusted(address: str, trusted) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(forwarded_for: str | None, peer: str, trusted=()) -> str:
    """The address a request comes from, as far as the hub's own proxy can tell.

    ``forwarded_for``: the ``X-Forwarded-For`` header (or None); ``peer``: the address
    that connected to the hub; ``trusted``: networks (see :func:`parse_networks`) of
    proxies whose entries are skipped. Without the header, ``peer``.
    """
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    if not hops:
        return peer
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0]
