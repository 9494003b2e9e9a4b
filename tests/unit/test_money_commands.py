"""The money door (server/money_commands.py) on the in-memory store: what a transfer and a
venue control append, idempotency by transfer id, and the refusals, naming the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from server.commands import CommandHandlers, PlaceOrderInput
from server.errors import AccountsDisabled, IdempotencyConflict, InvalidArgument
from server.eventstore import EventStore
from server.instrument_config import load_venue
from server.log_contract.layout import instrument_stream, transfer_stream
from server.money_commands import MoneyCommands
from server.settings import DEFAULT_INSTRUMENTS_FILE

VENUE = load_venue(DEFAULT_INSTRUMENTS_FILE)


@pytest.fixture
def money(store: EventStore, clock: Callable[[], datetime]) -> MoneyCommands:
    return MoneyCommands(store, VENUE.instruments, VENUE.assets, now=clock)


async def test_a_deposit_is_the_first_event_of_its_transfer_stream_at_the_assets_precision(
    money: MoneyCommands, store: EventStore
) -> None:
    written = await money.deposit("alice", "USD", "12.5", "t-1")
    [event] = await store.read_stream(transfer_stream("t-1"))
    assert event.type == "DepositRequested"
    data = dict(event.data)
    assert (data["op"], data["user_id"], data["asset"], data["amount"]) == (
        "deposit",
        "alice",
        "USD",
        "12.50000000",
    )
    assert (written.position, written.event_id, written.duplicate) == (
        event.position,
        event.event_id,
        False,
    )


async def test_a_retry_answers_the_first_request_and_other_terms_conflict(
    money: MoneyCommands, store: EventStore
) -> None:
    first = await money.withdraw("alice", "BTC", "1", "t-2")
    again = await money.withdraw("alice", "BTC", "1.000", "t-2")
    assert (again.position, again.event_id, again.duplicate) == (
        first.position,
        first.event_id,
        True,
    )
    with pytest.raises(IdempotencyConflict):
        await money.withdraw("alice", "BTC", "2", "t-2")
    with pytest.raises(IdempotencyConflict):
        await money.deposit("alice", "BTC", "1", "t-2")  # a deposit is another transfer
    assert len(await store.read_stream(transfer_stream("t-2"))) == 1


@pytest.mark.parametrize(
    ("user_id", "asset", "amount", "transfer_id", "violation"),
    [
        ("alice", "DOGE", "1", "t", ("asset", "UNKNOWN_ASSET")),
        ("alice", "", "1", "t", ("asset", "REQUIRED")),
        ("alice", "USD", "0", "t", ("amount", "NOT_POSITIVE")),
        ("alice", "USD", "0.000000001", "t", ("amount", "OFF_UNIT_GRID")),
        ("alice", "USD", "", "t", ("amount", "REQUIRED")),
        ("alice", "USD", "1", "", ("transfer_id", "REQUIRED")),
        ("", "USD", "1", "t", ("user_id", "REQUIRED")),
    ],
)
async def test_bad_transfers_are_refused_naming_the_field(
    money: MoneyCommands,
    store: EventStore,
    user_id: str,
    asset: str,
    amount: str,
    transfer_id: str,
    violation: tuple[str, str],
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await money.deposit(user_id, asset, amount, transfer_id)
    assert [(v.field, v.reason) for v in refused.value.violations] == [violation]
    assert await store.read_all() == []


async def test_a_venue_control_is_appended_to_the_instruments_stream(
    money: MoneyCommands, store: EventStore
) -> None:
    await money.set_instrument_status("ops", "BTC-USD", "HALTED")
    [event] = await store.read_stream(instrument_stream("BTC-USD"))
    assert (event.type, event.data["symbol"], event.data["status"], event.data["user_id"]) == (
        "InstrumentStatusRequested",
        "BTC-USD",
        "HALTED",
        "ops",
    )
    for instrument, status, field in (
        ("XYZ", "HALTED", "instrument"),
        ("BTC-USD", "OFF", "status"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            await money.set_instrument_status("ops", instrument, status)
        assert refused.value.violations[0].field == field


async def test_with_accounts_off_transfers_are_a_failed_precondition(store: EventStore) -> None:
    money = MoneyCommands(store, VENUE.instruments, None)
    with pytest.raises(AccountsDisabled):
        await money.deposit("alice", "USD", "1", "t-1")
    assert await store.read_all() == []


async def test_no_order_is_placed_for_the_fee_account(handlers: CommandHandlers) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await handlers.place_order(
            PlaceOrderInput(
                user_id="venue-fees",
                instrument="BTC-USD",
                side="BUY",
                type="LIMIT",
                quantity="1",
                price="100",
            )
        )
    assert [(v.field, v.reason) for v in refused.value.violations] == [
        ("user_id", "RESERVED_ACCOUNT")
    ]
