"""wait_for_port against real sockets on loopback."""

import asyncio
import socket
import time

import pytest

from hub_config.readiness import wait_for_port


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_returns_soon_after_the_port_opens():
    port = free_port()

    async def main():
        async def open_later():
            await asyncio.sleep(0.3)
            return await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)

        opener = asyncio.ensure_future(open_later())
        start = time.monotonic()
        await wait_for_port("127.0.0.1", port, timeout=10)
        waited = time.monotonic() - start
        (await opener).close()
        return waited

    waited = asyncio.run(main())
    assert 0.3 <= waited < 5


def test_times_out_when_nothing_listens():
    with pytest.raises(TimeoutError):
        asyncio.run(wait_for_port("127.0.0.1", free_port(), timeout=0.3))


def test_stops_when_the_server_exits():
    async def exited():
        return 1

    with pytest.raises(RuntimeError, match="exited with status 1"):
        asyncio.run(wait_for_port("127.0.0.1", free_port(), timeout=30, exited=exited))
