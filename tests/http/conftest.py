"""The HTTP tests' exchange: one ``python -m server`` per module (``live_exchange.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_exchange import LiveExchange, running_server


@pytest.fixture(scope="module")
def live_exchange(  # type: ignore[no-untyped-def]
    service_urls, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveExchange]:
    with running_server(service_urls, tmp_path_factory.mktemp("live-exchange")) as exchange:
        yield exchange
