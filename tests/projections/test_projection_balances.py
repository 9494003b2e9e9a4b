"""Balances, the ledger, trade fees and instrument statuses on the read side, from logs
written by a real engine with accounts on, through real PostgreSQL and Redis."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projection_log import ScriptedLog, random_commands
from test_projection_views import caught_up, new_runner

from domain.assets import FEE_ACCOUNT
from domain.instruments import Instrument
from projections.balance_views import BalanceViews
from projections.readers import InvalidPageToken
from projections.rebuild import rebuild
from projections.redis_views import drop_redis_views
from projections.runner import ProjectionRunner
from projections.views import BalanceSnapshot, BalanceView, BookSnapshot
from server.eventstore import EventStore, open_event_store
from tests.conftest import create_database, drop_database

FEE_INSTRUMENTS = {
    "BTC-USD": Instrument(
        "BTC-USD", Decimal("0.01"), Decimal("0.0001"), maker_fee_bps=5, taker_fee_bps=10
    ),
}
D = Decimal


def place(order_id: str, user: str, side: str, price: str, quantity: str) -> dict[str, Any]:
    return {
        "op": "place",
        "order_id": order_id,
        "user_id": user,
        "instrument": "BTC-USD",
        "side": side,
        "type": "LIMIT",
        "price": price,
        "quantity": quantity,
        "time_in_force": "GTC",
    }


def transfer(op: str, transfer_id: str, user: str, asset: str, amount: str) -> dict[str, Any]:
    return {"op": op, "transfer_id": transfer_id, "user_id": user, "asset": asset, "amount": amount}


SCRIPT: list[dict[str, Any]] = [
    {"op": "accounts", "enabled": True},
    transfer("deposit", "t1", "alice", "USD", "1000"),
    transfer("deposit", "t2", "bob", "BTC", "2"),
    place("s1", "bob", "SELL", "100.00", "1.5"),
    place("b1", "alice", "BUY", "101.00", "1"),  # takes 1 at 100: fee 0.1, bob's 0.05
    transfer("withdraw", "t3", "bob", "BTC", "1"),  # refused: 0.5 available, 0.5 held
    transfer("withdraw", "t4", "bob", "BTC", "0.5"),
    {"op": "cancel", "order_id": "s1"},  # releases bob's last 0.5 BTC
    {"op": "instrument_status", "symbol": "BTC-USD", "status": "HALTED"},
]


def units(amount: Decimal, precision: int) -> int:
    scaled = amount.scaleb(precision)
    assert scaled == scaled.to_integral_value(), amount
    return int(scaled)


async def view_balances(pool: asyncpg.Pool) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    rows = await pool.fetch("SELECT user_id, asset, available, held FROM view_balances")
    return {(r["user_id"], r["asset"]): (r["available"], r["held"]) for r in rows}


async def ledger_sums(pool: asyncpg.Pool) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    rows = await pool.fetch(
        "SELECT user_id, asset, sum(available_change) AS a, sum(held_change) AS h"
        " FROM view_ledger_entries GROUP BY user_id, asset"
    )
    return {(r["user_id"], r["asset"]): (r["a"], r["h"]) for r in rows}


async def redis_balances(
    views: BalanceViews, users: set[str]
) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    found: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for user in users:
        for view in await views.balances(user):
            found[(view.user_id, view.asset)] = (view.available, view.held)
    return found


async def assert_views_equal_engine(
    log: ScriptedLog, pool: asyncpg.Pool, views: BalanceViews
) -> None:
    """Every balance of the engine, exactly, in PostgreSQL and in Redis; nothing else there;
    each balance is the sum of its ledger entries."""
    engine = log.engine
    expected = {key: value for key, value in engine.balances().items() if value != (0, 0)}
    in_postgres = await view_balances(pool)
    users = {user for user, _ in in_postgres} | {user for user, _ in expected}
    in_redis = await redis_balances(views, users)
    for name, found in (("postgres", in_postgres), ("redis", in_redis)):
        as_units = {
            (user, asset): (
                units(available, engine.assets[asset]),
                units(held, engine.assets[asset]),
            )
            for (user, asset), (available, held) in found.items()
        }
        nonzero = {key: value for key, value in as_units.items() if value != (0, 0)}
        assert nonzero == expected, name
        for key, value in as_units.items():
            assert value == engine.balance(*key), (name, key)
    assert await ledger_sums(pool) == in_postgres


async def dump_money_views(pool: asyncpg.Pool, redis: aioredis.Redis, prefix: str) -> Any:
    balances = await pool.fetch("SELECT * FROM view_balances ORDER BY user_id, asset")
    ledger = await pool.fetch("SELECT * FROM view_ledger_entries ORDER BY entry_id")
    statuses = await pool.fetch("SELECT * FROM view_instrument_status ORDER BY instrument")
    trades = await pool.fetch("SELECT * FROM view_trades ORDER BY trade_seq")
    hashes = {}
    async for key in redis.scan_iter(match=f"{prefix}balances:*"):
        hashes[key] = await redis.hgetall(key)
    users = sorted(await redis.smembers(f"{prefix}balance-users"))
    redis_statuses = await redis.hgetall(f"{prefix}instrument-status")
    return [[dict(row) for row in rows] for rows in (balances, ledger, statuses, trades)] + [
        hashes,
        users,
        redis_statuses,
    ]


async def test_scripted_money_gives_exact_balances_ledger_fees_and_status(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store, FEE_INSTRUMENTS)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    try:
        await log.run(SCRIPT)
        await caught_up(runner, log)
        views = runner.balance_views

        def pairs(balances: list[BalanceView]) -> dict[str, tuple[Decimal, Decimal]]:
            return {b.asset: (b.available, b.held) for b in balances}

        assert pairs(await views.balances("alice")) == {
            "BTC": (D(1), D(0)),
            "USD": (D("899.9"), D(0)),
        }
        assert pairs(await views.balances("bob")) == {
            "BTC": (D("0.5"), D(0)),
            "USD": (D("99.95"), D(0)),
        }
        assert pairs(await views.balances(FEE_ACCOUNT)) == {"USD": (D("0.15"), D(0))}
        assert await views.balances("nobody") == []
        # PostgreSQL holds the same (the fallback when Redis cannot serve them).
        for user in ("alice", "bob", FEE_ACCOUNT):
            assert await views.balances_from_postgres(user) == await views.balances(user)
        await assert_views_equal_engine(log, pg_pool, views)

        trades, _ = await runner.order_views.list_trades("BTC-USD")
        assert [(t.buyer_fee, t.seller_fee, t.fee_asset) for t in trades] == [
            (D("0.1"), D("0.05"), "USD")
        ]
        trade_id = trades[0].trade_id
        entries, token = await views.ledger("bob", "BTC", 0, None)
        assert token == ""
        assert [(e.cause, e.available_change, e.held_change, e.reference) for e in entries] == [
            ("RELEASE", D("0.5"), D("-0.5"), "s1"),
            ("WITHDRAWAL", D("-0.5"), D(0), "t4"),
            ("TRADE", D(0), D(-1), trade_id),
            ("HOLD", D("-1.5"), D("1.5"), "s1"),
            ("DEPOSIT", D(2), D(0), "t2"),
        ]
        fee_entries, _ = await views.ledger(FEE_ACCOUNT, None, 10, None)
        assert sorted((e.cause, e.available_change, e.reference) for e in fee_entries) == [
            ("FEE", D("0.05"), trade_id),
            ("FEE", D("0.1"), trade_id),
        ]
        alice_usd, _ = await views.ledger("alice", "USD", 0, None)
        assert sum(e.available_change for e in alice_usd) == D("899.9")
        assert ("FEE", D("-0.1")) in [(e.cause, e.available_change) for e in alice_usd]
        bob_usd, _ = await views.ledger("bob", "USD", 0, None)
        assert [(e.cause, e.available_change) for e in bob_usd] == [
            ("FEE", D("-0.05")),
            ("TRADE", D(100)),
        ]
        # Keyset pages: newest first, no gap, no repeat.
        everything, _ = await views.ledger("bob", None, 0, None)
        paged: list[int] = []
        token = None
        while True:
            page, token = await views.ledger("bob", None, 2, token)
            paged += [entry.entry_id for entry in page]
            if not token:
                break
        assert paged == [entry.entry_id for entry in everything]
        assert paged == sorted(paged, reverse=True)
        with pytest.raises(InvalidPageToken):
            await views.ledger("bob", None, 2, "bm90LWEtdG9rZW4")

        statuses = await views.instrument_statuses()
        assert {symbol: s.status for symbol, s in statuses.items()} == {"BTC-USD": "HALTED"}
        # The halt in the Redis views, the book and the live feeds too.
        in_redis = await runner.book_views.instrument_statuses()
        assert in_redis == statuses
        assert (await runner.book_views.get_book("BTC-USD")).status == "HALTED"
        book = runner.live.subscribe_book("BTC-USD")
        snapshot = await anext(book)
        assert isinstance(snapshot, BookSnapshot) and snapshot.status == "HALTED"
        status = runner.live.subscribe_instrument_status("BTC-USD")
        assert await anext(status) == statuses["BTC-USD"]
        assert runner.live.instrument_status("ETH-USD") == "TRADING"
    finally:
        await runner.stop()


async def test_live_balances_snapshot_then_every_change(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store, FEE_INSTRUMENTS)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    await runner.start()
    try:
        await log.run(SCRIPT[:3])
        await caught_up(runner, log)
        subscription = runner.live.subscribe_balances("bob")
        status = runner.live.subscribe_instrument_status("BTC-USD")
        await log.run(SCRIPT[3:])
        await caught_up(runner, log)
        assert [(s.status, bool(s.position)) async for s in _drain(status)] == [
            ("TRADING", False),
            ("HALTED", True),
        ]
        items = [item async for item in _drain(subscription)]
        subscription.close()
        snapshot = items[0]
        assert isinstance(snapshot, BalanceSnapshot)
        assert [(b.asset, b.available, b.held) for b in snapshot.balances] == [("BTC", D(2), D(0))]
        folded = {b.asset: b for b in snapshot.balances}
        for item in items[1:]:
            assert isinstance(item, BalanceView) and item.user_id == "bob"
            folded[item.asset] = item
        assert sorted(
            folded.values(), key=lambda b: b.asset
        ) == await runner.balance_views.balances("bob")
    finally:
        await runner.stop()


async def _drain(subscription: Any) -> AsyncIterator[Any]:
    """What the subscription holds now (the views have caught up: nothing more is due)."""
    while subscription.pending:
        yield await anext(subscription)


def test_a_replayed_event_changes_no_balance() -> None:
    from projections.balance_reducer import BalancesReducer

    log = ScriptedLog(None, FEE_INSTRUMENTS)
    import asyncio

    asyncio.run(log.run(SCRIPT))
    reducer = BalancesReducer()
    for event in log.memory:
        reducer.apply(event)
    once = {key: (s.available, s.held) for key, s in reducer.balances.items()}
    entries = len(reducer.take().entries)
    for event in log.memory:  # the whole log again, then its second half
        reducer.apply(event)
    for event in log.memory[len(log.memory) // 2 :]:
        reducer.apply(event)
    assert {key: (s.available, s.held) for key, s in reducer.balances.items()} == once
    assert reducer.take().entries == []
    assert entries > 0


# -- the property: random streams with money, against the engine -------------------------


def random_money_commands(seed: int, count: int) -> list[dict[str, Any]]:
    """Accounts on, then a seeded mix of every order type (random_commands) with deposits,
    withdrawals (some larger than what is available) and venue controls in between."""
    rng = random.Random(seed)
    commands: list[dict[str, Any]] = [{"op": "accounts", "enabled": True}]
    transfers = 0

    def money() -> dict[str, Any]:
        nonlocal transfers
        transfers += 1
        user = f"u{rng.randint(1, 6)}"
        asset = rng.choice(["BTC", "USD"])
        amount = (
            f"{rng.randint(1, 30) / 10:.1f}" if asset == "BTC" else f"{rng.randint(1, 1500)}.25"
        )
        op = "deposit" if rng.random() < 0.7 else "withdraw"
        if rng.random() < 0.05:  # the same transfer again: idempotent, nothing moves
            transfers -= 1
        return transfer(op, f"x{max(transfers, 1)}", user, asset, amount)

    for user in range(1, 7):
        if rng.random() < 0.8:
            commands.append(transfer("deposit", f"seed-usd-{user}", f"u{user}", "USD", "800"))
        if rng.random() < 0.8:
            commands.append(transfer("deposit", f"seed-btc-{user}", f"u{user}", "BTC", "6"))
    resume_in = 0  # a halt or cancel-only lasts a few commands
    for command in random_commands(seed, count):
        roll = rng.random()
        if roll < 0.2:
            commands.append(money())
        elif roll < 0.23 and resume_in == 0:
            status = rng.choice(["CANCEL_ONLY", "HALTED"])
            commands.append({"op": "instrument_status", "symbol": "BTC-USD", "status": status})
            resume_in = rng.randint(1, 4)
        commands.append(command)
        if resume_in > 0:
            resume_in -= 1
            if resume_in == 0:
                commands.append(
                    {"op": "instrument_status", "symbol": "BTC-USD", "status": "TRADING"}
                )
    commands.append({"op": "instrument_status", "symbol": "BTC-USD", "status": "TRADING"})
    return commands


@asynccontextmanager
async def fresh_read_side(admin_url: str, redis_url: str) -> AsyncIterator[Any]:
    """A database, an event store, a pool and a Redis prefix of one example's own."""
    name = f"exchange_t_{uuid.uuid4().hex[:12]}"
    url = await create_database(admin_url, name)
    store = await open_event_store(url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    redis = aioredis.from_url(redis_url)
    prefix = f"test-balances:{uuid.uuid4().hex[:10]}:"
    try:
        yield store, pool, redis, prefix
    finally:
        await drop_redis_views(redis, prefix)
        await redis.aclose()
        await pool.close()
        await store.close()
        await drop_database(admin_url, name)


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**31),
    count=st.integers(20, 150),
    inputs_per_append=st.sampled_from([1, 1, 9]),
)
async def test_views_hold_the_engine_balances_exactly_and_rebuild_the_same(
    service_urls: Any, seed: int, count: int, inputs_per_append: int
) -> None:
    async with fresh_read_side(service_urls.database_url, service_urls.redis_url) as (
        store,
        pool,
        redis,
        prefix,
    ):
        log = ScriptedLog(store, FEE_INSTRUMENTS, inputs_per_append=inputs_per_append)
        runner: ProjectionRunner = new_runner(store, pool, redis, prefix)
        commands = random_money_commands(seed, count)
        half = len(commands) // 2
        await runner.start()
        try:
            await log.run(commands[:half])
            await caught_up(runner, log)
            await assert_views_equal_engine(log, pool, runner.balance_views)
        finally:
            await runner.stop()
        # Written while the read side is stopped: it resumes from its checkpoints.
        await log.run(commands[half:])
        runner = new_runner(store, pool, redis, prefix)
        await runner.start()
        try:
            await caught_up(runner, log)
            await assert_views_equal_engine(log, pool, runner.balance_views)
            causes: dict[str, int] = defaultdict(int)
            for row in await pool.fetch("SELECT cause FROM view_ledger_entries"):
                causes[row["cause"]] += 1
            kept = await dump_money_views(pool, redis, prefix)
        finally:
            await runner.stop()
        await rebuild(store, pool, redis, key_prefix=prefix)
        assert await dump_money_views(pool, redis, prefix) == kept
        assert causes["DEPOSIT"] > 0 and causes["HOLD"] > 0


async def test_balances_lost_by_redis_come_from_postgres_then_are_rebuilt(
    event_store: EventStore, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    log = ScriptedLog(event_store, FEE_INSTRUMENTS, inputs_per_append=5)
    runner = new_runner(event_store, pg_pool, redis_client, key_prefix)
    commands = random_money_commands(5, 200)
    half = len(commands) // 2
    await runner.start()
    try:
        await log.run(commands[:half])
        await caught_up(runner, log)
        users = {user for user, _ in log.engine.balances()}
        user = sorted(users)[0]
        subscription = runner.live.subscribe_balances(user)
        snapshot = await anext(subscription)
        assert isinstance(snapshot, BalanceSnapshot)
        before = {u: await runner.balance_views.balances(u) for u in users}

        assert await drop_redis_views(redis_client, key_prefix) > 0
        # Redis cannot serve them now: the same balances come from PostgreSQL.
        assert {u: await runner.balance_views.balances(u) for u in users} == before

        await log.run(commands[half:])
        await caught_up(runner, log)
        await assert_views_equal_engine(log, pg_pool, runner.balance_views)
        # Rebuilt from the log up to where they were: the subscriber goes on, its updates
        # fold onto its snapshot to the balances the views hold.
        assert not subscription.lagged
        folded = {b.asset: b for b in snapshot.balances}
        async for item in _drain(subscription):
            assert isinstance(item, BalanceView)
            folded[item.asset] = item
        assert sorted(folded.values(), key=lambda b: b.asset) == (
            await runner.balance_views.balances(user)
        )
    finally:
        await runner.stop()
