"""Accounts end to end through gRPC: deposits, holds, settlement with fees, withdrawals,
venue controls, and the balances across a kill -9 of the engine and a rebuild of the views.

The venue here charges fees (maker 10 bps, taker 25 bps) on BTC-USD with USD at two
decimals, so fee rounding (up, to the cent) shows in exact amounts. Accounts used here are
not funded by the harness: each test deposits what it means.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from engine_workload import Workload, input_events, read_everything, wait_until_processed
from service_harness import Exchange, running_exchange, service_settings
from service_helpers import BUY, SELL, field_violations, limit, market, place
from test_engine_runner import RunnerProcess

from clients.generated.exchange.v1 import account_service_pb2 as acc
from clients.generated.exchange.v1 import account_service_pb2_grpc as acc_grpc
from clients.generated.exchange.v1 import admin_service_pb2 as adm
from clients.generated.exchange.v1 import admin_service_pb2_grpc as adm_grpc
from clients.generated.exchange.v1 import market_data_service_pb2 as md
from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import order_query_service_pb2 as query
from clients.generated.exchange.v1 import types_pb2 as types
from domain.engine import MatchingEngine
from server.accounts_mode import AccountsModeMismatch
from server.commands import CommandHandlers
from server.engine_inputs import new_engine, replay_inputs
from server.engine_runner import EngineRunner
from server.eventstore import open_event_store
from server.eventstore.port import EventStore
from server.instrument_config import load_venue
from server.log_contract.layout import REQUEST_EVENT_TYPES, VENUE_STREAM
from server.log_contract.mapper import encode
from server.money_commands import MoneyCommands
from server.settings import DEFAULT_INSTRUMENTS_FILE

BTC = "BTC-USD"
VENUE_FILE = {
    "assets": {"BTC": 8, "USD": 2},
    "instruments": [
        {
            "symbol": BTC,
            "tick_size": "1",
            "lot_size": "0.01",
            "maker_fee_bps": 10,
            "taker_fee_bps": 25,
        }
    ],
}


@pytest.fixture
def venue_file(tmp_path: Path) -> Path:
    path = tmp_path / "venue.json"
    path.write_bytes(orjson.dumps(VENUE_FILE))
    return path


@pytest.fixture
async def venue(
    fresh_database_url: str, service_redis_url: str, venue_file: Path
) -> AsyncIterator[Exchange]:
    settings = service_settings(fresh_database_url, service_redis_url, instruments_file=venue_file)
    async with running_exchange(settings, funding=None) as exchange:
        yield exchange


def admin(exchange: Exchange) -> Any:
    return adm_grpc.AdminServiceStub(exchange.channel)


def accounts(exchange: Exchange) -> Any:
    return acc_grpc.AccountServiceStub(exchange.channel)


async def deposit(
    exchange: Exchange, user_id: str, asset: str, amount: str, transfer_id: str
) -> Any:
    response = await admin(exchange).Deposit(
        adm.DepositRequest(user_id=user_id, asset=asset, amount=amount, transfer_id=transfer_id),
        timeout=30,
    )
    return response.transfer


async def balances(exchange: Exchange, user_id: str, min_position: str = "") -> dict[str, Any]:
    """asset -> (available, held) as Decimals."""
    response = await accounts(exchange).GetBalances(
        acc.GetBalancesRequest(user_id=user_id, min_position=min_position), timeout=30
    )
    return {b.asset: (Decimal(b.available), Decimal(b.held)) for b in response.balances}


async def ledger(exchange: Exchange, user_id: str, asset: str = "") -> list[Any]:
    entries: list[Any] = []
    token = ""
    while True:
        page = await accounts(exchange).ListLedgerEntries(
            acc.ListLedgerEntriesRequest(
                user_id=user_id, asset=asset, page_size=2, page_token=token
            ),
            timeout=30,
        )
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            return entries[::-1]  # oldest first


def changes(entries: list[Any]) -> list[tuple[int, str, Decimal, Decimal]]:
    return [
        (e.cause, e.asset, Decimal(e.available_change), Decimal(e.held_change)) for e in entries
    ]


async def placed(exchange: Exchange, request: cmd.PlaceOrderRequest) -> types.Order:
    """Place and wait for the engine's answer (and the views)."""
    return (await answered(exchange, request)).order


async def answered(exchange: Exchange, request: cmd.PlaceOrderRequest) -> Any:
    return await exchange.commands.PlaceOrder(
        cmd.PlaceOrderRequest(**_fields(request), wait_for_outcome=True), timeout=30
    )


def _fields(request: cmd.PlaceOrderRequest) -> dict[str, Any]:
    return {field.name: value for field, value in request.ListFields()}


async def test_deposit_trade_then_balances_and_ledger_on_both_sides_and_the_fee_account(
    venue: Exchange,
) -> None:
    first = await deposit(venue, "alice", "BTC", "2", "dep-a")
    assert (first.status, first.amount, first.duplicate) == (
        acc.TRANSFER_STATUS_COMPLETED,
        "2.00000000",
        False,
    )
    await deposit(venue, "bob", "USD", "10000", "dep-b")
    # A retry of the same deposit answers the original outcome; nothing is credited twice.
    retry = await deposit(venue, "bob", "USD", "10000.00", "dep-b")
    assert (retry.status, retry.duplicate) == (acc.TRANSFER_STATUS_COMPLETED, True)

    maker = await placed(venue, limit("alice", SELL, "3333", "1.00"))
    assert maker.status == types.ORDER_STATUS_OPEN
    answer = await answered(venue, limit("bob", BUY, "3400", "0.50"))
    assert answer.order.status == types.ORDER_STATUS_FILLED
    # 0.5 BTC at 3333 = 1666.50 USD. Bob (taker, 25 bps) pays 4.16625 -> 4.17; alice
    # (maker, 10 bps) pays 1.6665 -> 1.67. Bob's hold was 50 lots x (34.00 + 0.085 -> 0.09).
    assert await balances(venue, "bob", answer.position) == {
        "BTC": (Decimal("0.5"), Decimal(0)),
        "USD": (Decimal("8329.33"), Decimal(0)),
    }
    assert await balances(venue, "alice") == {
        "BTC": (Decimal("1.00"), Decimal("0.50")),
        "USD": (Decimal("1664.83"), Decimal(0)),
    }
    assert await balances(venue, "venue-fees") == {"USD": (Decimal("5.84"), Decimal(0))}

    L = acc
    assert changes(await ledger(venue, "bob")) == [
        (L.LEDGER_CAUSE_DEPOSIT, "USD", Decimal("10000"), Decimal(0)),
        (L.LEDGER_CAUSE_HOLD, "USD", Decimal("-1704.50"), Decimal("1704.50")),
        (L.LEDGER_CAUSE_TRADE, "USD", Decimal("38.00"), Decimal("-1704.50")),
        (L.LEDGER_CAUSE_FEE, "USD", Decimal("-4.17"), Decimal(0)),
        (L.LEDGER_CAUSE_TRADE, "BTC", Decimal("0.5"), Decimal(0)),
    ]
    assert changes(await ledger(venue, "alice", "USD")) == [
        (L.LEDGER_CAUSE_TRADE, "USD", Decimal("1666.50"), Decimal(0)),
        (L.LEDGER_CAUSE_FEE, "USD", Decimal("-1.67"), Decimal(0)),
    ]
    assert changes(await ledger(venue, "venue-fees")) == [
        (L.LEDGER_CAUSE_FEE, "USD", Decimal("4.17"), Decimal(0)),
        (L.LEDGER_CAUSE_FEE, "USD", Decimal("1.67"), Decimal(0)),
    ]
    # Each party sees its own fee on the trade; anyone else sees none.
    trades = await venue.queries.ListTrades(query.ListTradesRequest(instrument=BTC))
    assert [(t.fee, t.fee_asset) for t in trades.trades] == [("", "")]  # the tool's key
    as_bob = await venue.queries.ListTrades(
        query.ListTradesRequest(instrument=BTC), metadata=await _key_of(venue, "bob")
    )
    assert [(t.fee, t.fee_asset) for t in as_bob.trades] == [("4.17", "USD")]
    as_alice = await venue.queries.ListTrades(
        query.ListTradesRequest(instrument=BTC), metadata=await _key_of(venue, "alice")
    )
    assert [(t.fee, t.fee_asset) for t in as_alice.trades] == [("1.67", "USD")]


async def _key_of(exchange: Exchange, user_id: str) -> tuple[tuple[str, str]]:
    assert exchange.keys is not None
    return (("authorization", f"Bearer {await exchange.keys.key_for(user_id)}"),)


async def test_a_withdrawal_is_refused_for_held_funds_and_allowed_after_the_cancel(
    venue: Exchange,
) -> None:
    await deposit(venue, "carol", "USD", "1000", "dep-c")
    # 500 lots of 0.01 at 100: 1.00 each, plus the taker fee rounded up per lot (0.0025
    # -> 0.01), so any split into fills is covered: 505.00 held.
    order = await placed(venue, limit("carol", BUY, "100", "5.00"))
    assert await balances(venue, "carol") == {"USD": (Decimal("495.00"), Decimal("505.00"))}
    key = await _key_of(venue, "carol")
    refused = await accounts(venue).Withdraw(
        acc.WithdrawRequest(asset="USD", amount="600", transfer_id="w-1"), metadata=key
    )
    assert (refused.transfer.status, refused.transfer.reason) == (
        acc.TRANSFER_STATUS_REJECTED,
        "INSUFFICIENT_FUNDS",
    )
    # The id is spent: the same request answers the same refusal.
    again = await accounts(venue).Withdraw(
        acc.WithdrawRequest(asset="USD", amount="600", transfer_id="w-1"), metadata=key
    )
    assert (again.transfer.reason, again.transfer.duplicate) == ("INSUFFICIENT_FUNDS", True)
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await accounts(venue).Withdraw(
            acc.WithdrawRequest(asset="USD", amount="601", transfer_id="w-1"), metadata=key
        )
    assert other.value.code() == grpc.StatusCode.ALREADY_EXISTS

    await venue.commands.CancelOrder(
        cmd.CancelOrderRequest(order_id=order.order_id, user_id="carol", wait_for_outcome=True)
    )
    done = await accounts(venue).Withdraw(
        acc.WithdrawRequest(asset="USD", amount="600", transfer_id="w-2"), metadata=key
    )
    assert done.transfer.status == acc.TRANSFER_STATUS_COMPLETED
    assert await balances(venue, "carol", done.transfer.position) == {
        "USD": (Decimal("400.00"), Decimal(0))
    }
    # A trade key withdraws only from its own account.
    with pytest.raises(grpc.aio.AioRpcError) as not_hers:
        await accounts(venue).Withdraw(
            acc.WithdrawRequest(user_id="alice", asset="USD", amount="1", transfer_id="w-3"),
            metadata=key,
        )
    assert not_hers.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_door_refuses_bad_transfers_naming_the_field(venue: Exchange) -> None:
    cases = [
        (("kim", "XRP", "1", "t-1"), ("asset", "UNKNOWN_ASSET")),
        (("kim", "USD", "0.001", "t-1"), ("amount", "OFF_UNIT_GRID")),
        (("kim", "USD", "-1", "t-1"), ("amount", "NOT_POSITIVE")),
        (("kim", "USD", "1", ""), ("transfer_id", "REQUIRED")),
    ]
    for (user_id, asset, amount, transfer_id), violation in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await deposit(venue, user_id, asset, amount, transfer_id)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == [violation]
    # The fee account never trades: no trade key is issued for it, so no order either.
    with pytest.raises(grpc.aio.AioRpcError) as no_key:
        await admin(venue).IssueApiKey(
            adm.IssueApiKeyRequest(user_id="venue-fees", scopes=[adm.SCOPE_TRADE])
        )
    assert field_violations(no_key.value) == [("user_id", "RESERVED_ACCOUNT")]
    with pytest.raises(grpc.aio.AioRpcError) as fees:
        await place(venue, limit("venue-fees", BUY, "100", "1.00"))
    assert fees.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_order_that_cannot_be_paid_is_rejected_and_a_market_order_stops_at_funds(
    venue: Exchange,
) -> None:
    await deposit(venue, "kim", "USD", "100", "dep-k")
    rejected = await placed(venue, limit("kim", BUY, "100", "1.00"))  # needs 100.25
    assert (rejected.status, rejected.reason) == (
        types.ORDER_STATUS_REJECTED,
        "INSUFFICIENT_FUNDS",
    )
    assert await balances(venue, "kim") == {"USD": (Decimal(100), Decimal(0))}

    await deposit(venue, "alice", "BTC", "1", "dep-a")
    await placed(venue, limit("alice", SELL, "100", "1.00"))
    # 100 USD buys 99 lots of 0.01 at 100 (99.00 + 0.2475 -> 0.25 fee); all 100 would
    # cost 100.25: the sweep stops there and the rest is cancelled.
    swept = await placed(venue, market("kim", BUY, "1.00"))
    assert (swept.status, swept.reason, swept.filled_quantity) == (
        types.ORDER_STATUS_CANCELLED,
        "INSUFFICIENT_FUNDS",
        "0.99",
    )


async def test_halt_cancel_only_and_resume(venue: Exchange) -> None:
    await deposit(venue, "alice", "BTC", "1", "dep-a")
    resting = await placed(venue, limit("alice", SELL, "10", "0.50"))
    stream = venue.market_data.StreamOrderBook(md.StreamOrderBookRequest(instrument=BTC))
    first = await stream.read()
    assert first.snapshot.status == types.INSTRUMENT_STATUS_TRADING

    async def set_status(status: int) -> Any:
        return await admin(venue).SetInstrumentStatus(
            adm.SetInstrumentStatusRequest(instrument=BTC, status=status), timeout=30
        )

    halted = await set_status(types.INSTRUMENT_STATUS_HALTED)
    assert halted.status == types.INSTRUMENT_STATUS_HALTED
    change = await stream.read()
    assert change.status_change.status == types.INSTRUMENT_STATUS_HALTED
    instruments = await venue.queries.ListInstruments(query.ListInstrumentsRequest())
    assert [(i.symbol, i.status) for i in instruments.instruments] == [
        (BTC, types.INSTRUMENT_STATUS_HALTED)
    ]
    new = await placed(venue, limit("alice", SELL, "11", "0.10"))
    assert (new.status, new.reason) == (types.ORDER_STATUS_REJECTED, "INSTRUMENT_HALTED")
    cancel = await venue.commands.CancelOrder(
        cmd.CancelOrderRequest(order_id=resting.order_id, user_id="alice", wait_for_outcome=True)
    )
    assert cancel.rejection_reason == "INSTRUMENT_HALTED"

    cancel_only = await set_status(types.INSTRUMENT_STATUS_CANCEL_ONLY)
    assert cancel_only.status == types.INSTRUMENT_STATUS_CANCEL_ONLY
    refused = await placed(venue, limit("alice", SELL, "11", "0.10"))
    assert refused.reason == "INSTRUMENT_HALTED"
    allowed = await venue.commands.CancelOrder(
        cmd.CancelOrderRequest(order_id=resting.order_id, user_id="alice", wait_for_outcome=True)
    )
    assert allowed.order.status == types.ORDER_STATUS_CANCELLED
    assert await balances(venue, "alice") == {"BTC": (Decimal(1), Decimal(0))}

    resumed = await set_status(types.INSTRUMENT_STATUS_TRADING)
    assert resumed.status == types.INSTRUMENT_STATUS_TRADING
    statuses = []
    while len(statuses) < 2:  # the cancel's book update comes between them
        message = await stream.read()
        if message.HasField("status_change"):
            statuses.append(message.status_change.status)
    assert statuses == [types.INSTRUMENT_STATUS_CANCEL_ONLY, types.INSTRUMENT_STATUS_TRADING]
    stream.cancel()
    assert (await placed(venue, limit("alice", SELL, "11", "0.10"))).status == (
        types.ORDER_STATUS_OPEN
    )


async def test_balances_stream_shows_the_snapshot_then_each_change(venue: Exchange) -> None:
    await deposit(venue, "kim", "USD", "50", "dep-1")
    stream = accounts(venue).StreamBalanceUpdates(
        acc.StreamBalanceUpdatesRequest(), metadata=await _key_of(venue, "kim")
    )
    first = await stream.read()
    assert [(b.asset, b.available) for b in first.snapshot.balances] == [("USD", "50.00")]
    await deposit(venue, "kim", "USD", "25", "dep-2")
    update = await stream.read()
    assert (update.balance.asset, update.balance.available, update.balance.held) == (
        "USD",
        "75.00",
        "0.00",
    )
    stream.cancel()


# ------------------------------------------------------------------ crash and rebuild

INSTRUMENTS_FILE_VENUE = load_venue(DEFAULT_INSTRUMENTS_FILE)
USERS = [f"u{n}" for n in range(1, 7)]


async def _fund_workload_users(money: MoneyCommands) -> None:
    for user in USERS:
        await money.deposit(user, "BTC", "5", f"fund-btc-{user}")
        await money.deposit(user, "USD", "400", f"fund-usd-{user}")


def _replayed(inputs: list[tuple[str, dict[str, Any]]]) -> MatchingEngine:
    engine = new_engine(INSTRUMENTS_FILE_VENUE.instruments, assets=INSTRUMENTS_FILE_VENUE.assets)
    replay_inputs(
        inputs,
        INSTRUMENTS_FILE_VENUE.instruments,
        assets=INSTRUMENTS_FILE_VENUE.assets,
        engine=engine,
    )
    return engine


async def _results_by_stream(store: EventStore) -> dict[str, list[dict[str, Any]]]:
    by_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in await read_everything(store):
        if event.type in REQUEST_EVENT_TYPES or event.stream == VENUE_STREAM:
            continue
        if event.stream.startswith(("order-", "trades-", "book-", "transfer-", "instrument-")):
            by_stream[event.stream].append(event.data)
    return dict(by_stream)


async def test_kill_9_with_balances_on_then_restart_balances_equal_a_full_replay(
    fresh_database_url: str, redis_url: str
) -> None:
    store = await open_event_store(fresh_database_url)
    runner = RunnerProcess(fresh_database_url, redis_url)
    runner._env["ACCOUNTS_ENABLED"] = "1"  # the service's default: balances on
    instruments = INSTRUMENTS_FILE_VENUE.instruments
    try:
        money = MoneyCommands(store, instruments, INSTRUMENTS_FILE_VENUE.assets)
        workload = Workload(CommandHandlers(store, instruments), store, seed=5)
        await runner.start()
        await _fund_workload_users(money)
        await workload.run(80)
        assert workload.last_position is not None
        await wait_until_processed(store, workload.last_position)
        # Killed while more input keeps coming: whatever batch it was writing is all in
        # the log or none of it is.
        writing = asyncio.ensure_future(workload.run(120))
        await asyncio.sleep(0)  # let some of it be written and read
        await runner.kill(signal.SIGKILL)
        await writing
        await workload.run(40)  # more input while no runner runs
        await runner.start()
        assert workload.last_position is not None
        await wait_until_processed(store, workload.last_position)
        await runner.kill(signal.SIGTERM)

        inputs = [(event.type, event.data) for event in await input_events(store)]
        replay = _replayed(inputs)
        # Every result in the log exactly once, as a fresh engine makes them.
        expected: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for stream, record in replay_inputs(
            inputs, instruments, assets=INSTRUMENTS_FILE_VENUE.assets
        ):
            expected[stream].append(encode(record)[1])
        assert await _results_by_stream(store) == dict(expected)
        # The restarted engine (snapshot + tail) holds the replay's balances, and some
        # orders were refused for funds.
        restarted = EngineRunner(store, instruments, assets=INSTRUMENTS_FILE_VENUE.assets)
        after = await restarted.load_state()
        tail = [e for e in await input_events(store) if after is None or e.position > after]
        await restarted.process_batch(tail)  # re-handled only to rebuild the state
        assert restarted.engine.balances() == replay.balances()
        assert any(r.get("reason") == "INSUFFICIENT_FUNDS" for rs in expected.values() for r in rs)
        # The setup from the configuration is in the log once, whatever the restarts.
        venue = [(e.type, e.data.get("asset")) for e in await store.read_stream(VENUE_STREAM)]
        assert venue == [
            ("AssetAdded", "BTC"),
            ("AssetAdded", "ETH"),
            ("AssetAdded", "USD"),
            ("AccountsEnabled", None),
        ]
        # And that log cannot be served with accounts off.
        with pytest.raises(AccountsModeMismatch, match="ACCOUNTS_ENABLED=0"):
            await EngineRunner(store, instruments).load_state()
    finally:
        await runner.kill_if_running()
        await store.close()


async def test_rebuilt_views_hold_the_same_balances(
    fresh_database_url: str, service_redis_url: str, venue_file: Path
) -> None:
    settings = service_settings(fresh_database_url, service_redis_url, instruments_file=venue_file)
    async with running_exchange(settings, funding=None) as exchange:
        await deposit(exchange, "alice", "BTC", "1", "dep-a")
        await deposit(exchange, "bob", "USD", "1000", "dep-b")
        await placed(exchange, limit("alice", SELL, "30", "0.40"))
        await placed(exchange, limit("bob", BUY, "31", "0.30"))
        before = {user: await balances(exchange, user) for user in ("alice", "bob", "venue-fees")}
        ledger_before = await ledger(exchange, "bob")
    rebuild = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.rebuild",
        cwd=Path(__file__).resolve().parents[2],
        env={
            **os.environ,
            "DATABASE_URL": fresh_database_url,
            "REDIS_URL": service_redis_url,
        },
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await rebuild.communicate()
    assert rebuild.returncode == 0, output
    async with running_exchange(settings, funding=None) as exchange:
        after = {user: await balances(exchange, user) for user in ("alice", "bob", "venue-fees")}
        assert after == before
        assert changes(await ledger(exchange, "bob")) == changes(ledger_before)
        # 0.30 BTC at 30 = 9.00 USD: bob (taker) 0.0225 -> 0.03, alice (maker) 0.009 -> 0.01.
        assert before["venue-fees"] == {"USD": (Decimal("0.04"), Decimal(0))}


# ------------------------------------------------------------------ accounts off


async def test_with_accounts_off_matching_is_as_before_and_transfers_are_refused(
    fresh_database_url: str, service_redis_url: str
) -> None:
    settings = service_settings(fresh_database_url, service_redis_url, accounts_enabled=False)
    async with running_exchange(settings, funding=None) as exchange:
        maker = await placed(exchange, limit("alice", SELL, "45000.00", "1.5"))
        taker = await placed(exchange, limit("bob", BUY, "45010.00", "1"))
        # Nobody deposited anything, and the orders trade as they always did.
        assert (maker.status, taker.status) == (types.ORDER_STATUS_OPEN, types.ORDER_STATUS_FILLED)
        for call in (
            deposit(exchange, "alice", "USD", "1", "t-1"),
            accounts(exchange).GetBalances(acc.GetBalancesRequest(user_id="alice")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        store = exchange.app.event_store
        assert store is not None
        # The log holds what a fresh engine without accounts makes of its inputs, and no
        # money record at all.
        inputs = [(event.type, event.data) for event in await input_events(store)]
        instruments = INSTRUMENTS_FILE_VENUE.instruments
        expected: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for stream, record in replay_inputs(inputs, instruments):
            expected[stream].append(encode(record)[1])
        assert await _results_by_stream(store) == dict(expected)
        assert await store.read_stream(VENUE_STREAM) == []
        assert not any(
            event.type in ("FundsHeld", "TradeSettled") for event in await read_everything(store)
        )
    # Started again with accounts on, the log (orders matched without them) is refused.
    with pytest.raises(AccountsModeMismatch, match="ACCOUNTS_ENABLED=1"):
        async with running_exchange(
            service_settings(fresh_database_url, service_redis_url), funding=None
        ):
            pass
