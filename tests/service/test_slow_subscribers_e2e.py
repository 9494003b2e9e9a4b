"""Stalled stream subscribers are bounded: 200 trade subscribers that never read while
more trades flow than their buffers hold.

What must hold: the memory of the process hosting the service (this test's: the app runs
in it) grows by less than RSS_BOUND_BYTES (82 MiB; measured: ~61 MiB); a subscriber that
reads sees every trade, once; PlaceOrder keeps answering quickly; and every stalled
subscriber, its bounded buffer overflowing, is ended with RESOURCE_EXHAUSTED.

Why the bound holds: the live feed publishes one trade object to every subscriber's
buffer (a reference each, at most DEFAULT_SUBSCRIBER_BUFFER of them), and a stalled call
holds at most one HTTP/2 flow-control window of bytes; past that the subscriber is dropped
and everything it held is freed.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from api_keys import TEST_ADMIN_API_KEY, bearer
from service_harness import Exchange
from service_helpers import BUY, SELL, limit

from clients.generated.exchange.v1 import market_data_service_pb2 as md
from clients.generated.exchange.v1 import market_data_service_pb2_grpc
from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from projections.live import DEFAULT_SUBSCRIBER_BUFFER
from server.eventstore.port import LogPosition

BTC = "BTC-USD"
STALLED_SUBSCRIBERS = 200
# More trades than a subscriber's buffer and its receive window hold together.
TRADES = DEFAULT_SUBSCRIBER_BUFFER + 400
# The stalled clients live in this process too; a real one holds its HTTP/2 receive window
# in its own. Their channel keeps that window small and fixed (no BDP growth), so what
# this process's RSS measures is the service's part.
STALLED_CHANNEL_OPTIONS = (("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384))
# The bound on the RSS growth: 32 MiB for the flow itself (engine state, views' caches;
# ~12 MiB measured with no stalled subscriber) and 256 KiB per stalled subscriber (its
# call's gRPC buffers on both ends, both in this process; ~250 KiB measured): 82 MiB.
RSS_BOUND_BYTES = 32 * 2**20 + STALLED_SUBSCRIBERS * 256 * 2**10
# PlaceOrder while the stalled subscribers are attached: the median and the slowest of
# the probes (generous: the machine running the tests is shared).
PROBES = 20
MEDIAN_LATENCY_BOUND_S = 0.25
MAX_LATENCY_BOUND_S = 2.0
FLOW_BOUND_S = 240.0


def rss_bytes() -> int:
    """This process's resident set (VmRSS of /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def _orders(
    user: str, side: int, count: int, tag: str
) -> AsyncIterator[cmd.StreamPlaceOrdersRequest]:
    """`count` orders of one user at 100 (a stream acts for one account)."""
    for number in range(count):
        order = limit(user, side, "100", "1", client_order_id=f"{tag}-{user}-{number}")
        yield cmd.StreamPlaceOrdersRequest(request_id=number, order=order)


async def _trade(exchange: Exchange, count: int, tag: str) -> str:
    """`count` trades: alice's resting sells, then bob's buys taking them; the position of
    the last order written."""
    positions = []
    for user, side in (("alice", SELL), ("bob", BUY)):
        call = exchange.commands.StreamPlaceOrders(
            _orders(user, side, count, tag), timeout=FLOW_BOUND_S
        )
        async for answer in call:
            assert answer.HasField("placed"), answer.error
            positions.append(answer.placed.position)
    return max(positions, key=LogPosition.parse)


async def _probe_latencies(exchange: Exchange) -> list[float]:
    latencies = []
    for number in range(PROBES):
        started = time.perf_counter()
        await exchange.commands.PlaceOrder(
            limit("carol", BUY, "1", "1", client_order_id=f"probe-{number}"), timeout=30
        )
        latencies.append(time.perf_counter() - started)
    return latencies


async def _read_trades(call: grpc.aio.UnaryStreamCall, count: int) -> list[str]:  # type: ignore[type-arg]
    ids = []
    while len(ids) < count:
        response = await call.read()
        assert response is not grpc.aio.EOF
        ids.append(response.trade.trade_id)
    return ids


async def test_stalled_subscribers_keep_memory_and_others_unaffected(exchange: Exchange) -> None:
    # Warm up (first trades, first stream) so lazy allocations are not counted as growth.
    warm = exchange.market_data.StreamTrades(md.StreamTradesRequest(instrument=BTC))
    warmed = await _trade(exchange, 20, "warm")
    warm.cancel()
    await exchange.settle(warmed)
    # Every subscriber below resumes after the warm-up's trades: each gets every trade of
    # the flow (missed ones first, then live), whenever its subscription starts.
    after = md.StreamTradesRequest(instrument=BTC, after_position=warmed)

    stalled_channel = grpc.aio.insecure_channel(exchange.target, options=STALLED_CHANNEL_OPTIONS)
    stalled_stub = market_data_service_pb2_grpc.MarketDataServiceStub(stalled_channel)
    as_admin = bearer(TEST_ADMIN_API_KEY)
    stalled = [
        stalled_stub.StreamTrades(after, metadata=as_admin) for _ in range(STALLED_SUBSCRIBERS)
    ]
    reader = exchange.market_data.StreamTrades(after)
    rss_before = rss_bytes()

    reading = asyncio.create_task(_read_trades(reader, TRADES))
    await _trade(exchange, TRADES, "flow")
    seen = await asyncio.wait_for(reading, FLOW_BOUND_S)
    latencies = await _probe_latencies(exchange)
    rss_after = rss_bytes()

    assert len(set(seen)) == TRADES  # every trade, once
    growth = rss_after - rss_before
    assert growth < RSS_BOUND_BYTES, f"RSS grew by {growth / 2**20:.1f} MiB"
    assert statistics.median(latencies) < MEDIAN_LATENCY_BOUND_S, latencies
    assert max(latencies) < MAX_LATENCY_BOUND_S, latencies

    # The stalled subscribers were dropped with RESOURCE_EXHAUSTED, their earlier
    # messages still readable before the status.
    for call in stalled:
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for _ in call:
                pass
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "resubscribe" in (ended.value.details() or "")
    for call in (*stalled, reader):
        call.cancel()
    await stalled_channel.close()
    print(  # the measured figures, for the record (pytest -s)
        f"RSS growth {growth / 2**20:.1f} MiB with {STALLED_SUBSCRIBERS} stalled subscribers "
        f"and {TRADES} trades; PlaceOrder median {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms"
    )
