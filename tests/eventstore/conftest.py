"""Fixtures for the event store contract: one `store` per adapter.

PostgreSQL always runs (the session database from tests/conftest.py). KurrentDB runs when
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
from server.eventstore.checkpoints import PostgresCheckpointStore

ADAPTERS = ["postgresql", "kurrentdb"]


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[EventStore]:
    if request.param == "kurrentdb":
        uri = os.environ.get("KURRENTDB_URI", "").strip()
        if not uri:
            pytest.skip("KurrentDB contract run skipped: set KURRENTDB_URI to run it")
        url = uri
    else:
        url = database_url
    event_store = await open_event_store(url)
    yield event_store
    await event_store.close()


@pytest.fixture
async def checkpoints(database_url: str) -> AsyncIterator[PostgresCheckpointStore]:
    checkpoint_store = await PostgresCheckpointStore.open(database_url, min_size=1, max_size=2)
    yield checkpoint_store
    await checkpoint_store.close()


@pytest.fixture
def prefix() -> str:
    """A stream-name prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}-"
