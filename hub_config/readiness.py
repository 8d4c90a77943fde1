"""Waiting for a new server to listen, at a fine interval.

After ``Spawner.start`` returns, JupyterHub polls the server with exponential backoff
(0.2 s, 0.4 s, 0.8 s, 1.6 s, ...), so a server that starts listening just after one
check waits up to a whole interval more. dlhub's spawners return from ``start`` only
once the server's port accepts connections, checked every 50 ms, so the hub's first
check finds it up. See docs/benchmarks.md for what this saves.
"""

from __future__ import annotations

import asyncio
import time

INTERVAL = 0.05


async def wait_for_port(
    host: str, port: int, timeout: float, exited=None, interval: float = INTERVAL
) -> None:
    """Return once ``host:port`` accepts a TCP connection.

    ``exited`` is an optional coroutine function (a spawner's ``poll``) returning None
    while the server runs; when it returns an exit status the wait ends with an error.
    Raises TimeoutError after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    checks = 0
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), interval * 4)
        except (TimeoutError, OSError):
            pass
        else:
            writer.close()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
        checks += 1
        if exited is not None and checks % 10 == 0:
            status = await exited()
            if status is not None:
                raise RuntimeError(f"the server exited with status {status} before it listened")
        await asyncio.sleep(interval)
