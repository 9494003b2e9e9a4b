"""What the service's asyncpg pools share (the event store's and the views')."""

from __future__ import annotations

import asyncpg


async def keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset that leaves the session as it is. asyncpg still rolls back an open
    transaction and drops listeners before calling it; what its default reset adds (a
    `RESET ALL; UNLISTEN *; ...` round trip) undoes session state that no user of these
    pools sets (`SET LOCAL` only; LISTEN has a connection of its own), and it cost one
    round trip per pooled query: per catch-up page, per head check, per engine batch."""
    return None
