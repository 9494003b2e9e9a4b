"""`python -m server.rebuild`: drop the read side's views and replay the log into new ones.

The rebuild itself is `projections.rebuild.rebuild`; this is its command line: it opens
the configured (or embedded) servers, runs it, and reports the outcome. Stop the service's
projections first (or run the service with PROJECTIONS_ENABLED=0): two builders writing
the same views would race.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import redis.asyncio as aioredis

from projections.builder import EventNotApplied, consumer_of
from projections.rebuild import rebuild
from server.embedded import resolve_service_urls
from server.eventstore import open_event_store
from server.settings import Settings


def _stopped_report(error: EventNotApplied) -> str:
    event = error.event
    return "\n".join(
        (
            f"rebuild stopped: {consumer_of(error.builder)} cannot apply an event",
            f"  position  {event.position.to_token()}",
            f"  type      {event.type}",
            f"  stream    {event.stream}",
            f"  event id  {event.event_id}",
            f"  reason    {type(error.cause).__name__}: {str(error.cause)[:500]}",
            "The views hold everything before that event's transaction. Fix the event (or the"
            " code) and run the rebuild again.",
        )
    )


async def _main() -> None:
    urls = resolve_service_urls()
    settings = Settings.from_env().with_urls(urls.database_url, urls.redis_url)
    event_store = await open_event_store(settings.resolved_event_store_url)
    pg_pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    redis = aioredis.from_url(settings.redis_url)
    try:
        report = await rebuild(event_store, pg_pool, redis)
    except EventNotApplied as error:
        print(_stopped_report(error), file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        await redis.aclose()
        await pg_pool.close()
        await event_store.close()
    rate = report.events / report.seconds if report.seconds else 0.0
    print(
        f"rebuilt the views up to {report.head.to_token() if report.head else 'an empty log'}: "
        f"{report.events} events in {report.seconds:.2f} s ({rate:,.0f} events/s)"
    )


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
