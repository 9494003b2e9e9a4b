"""Whether the log was written with accounts on, and the refusal of a start that disagrees.

The engine runner writes the records of its setup with accounts on (``AssetAdded`` per
asset, then ``AccountsEnabled``) to the ``venue`` stream, with its first batch of results
(``server.engine_inputs.prepare_engine``). So the log says which mode its results were
made in:

- ``AccountsEnabled`` on ``venue``: accounts are on. Starting with ``ACCOUNTS_ENABLED=0``
  would replay deposits, holds and settlements as nothing and match orders nobody can
  pay for: refused.
- no ``AccountsEnabled`` but an ``OrderPlaceRequested`` the engine has processed (at or
  before its progress): orders were matched without balances; turning accounts on now
  would hold nothing for the open ones and make a replay differ from the log: refused
  (the engine itself refuses ``EnableAccounts`` once an order was accepted).
- otherwise (an empty log, only clock ticks and keys, or orders the engine has not read
  yet) either mode may start.

A snapshot's ``accounts`` key says the same for the engine state it holds; the runner
checks it too when it loads one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.eventstore.port import EventFilter, EventStore, LogPosition
from server.log_contract.layout import ORDER_PLACE_REQUESTED, VENUE_STREAM
from server.log_contract.mapper import decode
from server.log_contract.records import AccountsEnabled, AssetAdded


class AccountsModeMismatch(RuntimeError):
    """ACCOUNTS_ENABLED disagrees with the log: the service must not start."""


@dataclass(frozen=True)
class VenueLog:
    """What the ``venue`` stream holds: accounts on or not, and the assets added."""

    accounts_enabled: bool = False
    assets: frozenset[str] = field(default_factory=frozenset)


async def read_venue(event_store: EventStore) -> VenueLog:
    enabled = False
    assets: set[str] = set()
    for event in await event_store.read_stream(VENUE_STREAM):
        record = decode(event)
        if isinstance(record, AccountsEnabled):
            enabled = True
        elif isinstance(record, AssetAdded):
            assets.add(record.asset)
    return VenueLog(enabled, frozenset(assets))


async def orders_processed(event_store: EventStore, processed_upto: LogPosition | None) -> bool:
    """Whether the engine has processed an order (one placed at or before its progress)."""
    if processed_upto is None:
        return False
    page = await event_store.read_all(
        None, EventFilter(event_types=(ORDER_PLACE_REQUESTED,)), limit=1
    )
    return bool(page) and page[0].position <= processed_upto


def mismatch(log_accounts: bool, accounts_enabled: bool, orders: bool) -> str | None:
    """The refusal's message, or None when the setting may run on this log."""
    if log_accounts and not accounts_enabled:
        return (
            "ACCOUNTS_ENABLED=0, but this log was written with accounts on (an "
            "AccountsEnabled record on the 'venue' stream): its balances and holds would be "
            "ignored. Start with ACCOUNTS_ENABLED=1, or use a new database."
        )
    if accounts_enabled and not log_accounts and orders:
        return (
            "ACCOUNTS_ENABLED=1, but this log holds orders matched with accounts off (no "
            "AccountsEnabled record on the 'venue' stream): nothing was held for them. "
            "Start with ACCOUNTS_ENABLED=0, or use a new database."
        )
    return None


async def check_accounts_mode(
    event_store: EventStore, accounts_enabled: bool, processed_upto: LogPosition | None
) -> VenueLog:
    """The venue stream's content; AccountsModeMismatch when the setting disagrees with
    it (`processed_upto`: the engine runner's progress, its last input)."""
    venue = await read_venue(event_store)
    orders = (
        not venue.accounts_enabled
        and accounts_enabled
        and await orders_processed(event_store, processed_upto)
    )
    message = mismatch(venue.accounts_enabled, accounts_enabled, orders)
    if message is not None:
        raise AccountsModeMismatch(message)
    return venue
