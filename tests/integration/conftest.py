"""Integration fixtures: ``postgres``, a private PostgreSQL server for the test module."""

import pytest

from pgtest import PostgresServer


@pytest.fixture(scope="module")
def postgres():
    """The URL of a private PostgreSQL server on a free port (:class:`pgtest.PostgresServer`),
    removed after the module."""
    server = PostgresServer().start()
    try:
        yield server.url
    finally:
        server.remove()
