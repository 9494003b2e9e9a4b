"""Fixtures for the event store contract: one `store` per adapter.

The in-memory fake and PostgreSQL always run (PostgreSQL in the session database from
tests/conftest.py; the fake needs no server, so `-k memory` runs without one). KurrentDB runs when
`KURRENTDB_URI` is set (e.g. `kurrentdb://127.0.0.1:2113?tls=false`), and is skipped with
that reason otherwise. Tests use stream names unique to themselves, so they hold on a log
that already has events in it (a KurrentDB server is never emptied between tests).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from server.eventstore import EventStore, open_event_store

ADAPTERS = ["memory", "postgresql", "kurrentdb"]


@pytest.fixture(params=ADAPTERS)
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of the adapter under test. PostgreSQL's session database is asked for only
    here (from a plain fixture: an async one cannot ask for another by name), so the
    fake's runs start no server."""
    if request.param == "kurrentdb":
        uri = os.environ.get("KURRENTDB_URI", "").strip()
        if not uri:
            pytest.skip("KurrentDB contract run skipped: set KURRENTDB_URI to run it")
        return uri
    if request.param == "memory":
        return "memory://"
    database_url: str = request.getfixturevalue("database_url")
    return database_url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    event_store = await open_event_store(store_url)
    yield event_store
    await event_store.close()


@pytest.fixture
def prefix() -> str:
    """A stream-name prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}-"
