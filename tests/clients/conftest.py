"""Fixtures of the client tests: the canned exchange server and a client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from canned_exchange import CannedExchange, start_canned_exchange

from clients.client import ExchangeClient


@pytest.fixture(scope="session")
async def canned_exchange() -> AsyncIterator[CannedExchange]:
    server, exchange = await start_canned_exchange()
    yield exchange
    await server.stop(grace=None)


@pytest.fixture
async def exchange(canned_exchange: CannedExchange) -> AsyncIterator[ExchangeClient]:
    async with ExchangeClient.connect(canned_exchange.target, timeout=5.0) as client:
        yield client
