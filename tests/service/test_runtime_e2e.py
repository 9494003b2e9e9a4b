"""What operators and tools see: health, reflection (grpcurl), instruments, Ping."""

from __future__ import annotations

import asyncio
import json
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_keys import TEST_ADMIN_API_KEY, account_channel
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from service_harness import Exchange

from clients.generated.exchange.v1 import diagnostics_service_pb2 as diagnostics
from clients.generated.exchange.v1 import order_query_service_pb2 as query

GRPCURL = Path(sys.executable).parent / "grpcurl"


async def _grpcurl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_health_reports_serving(exchange: Exchange) -> None:
    stub = health_pb2_grpc.HealthStub(exchange.channel)
    for service in ("", "exchange.v1.OrderCommandService"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_build_info_names_the_version_and_the_event_store(exchange: Exchange) -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    labels = {"version": pyproject["project"]["version"], "event_store": "postgresql"}

    assert REGISTRY.get_sample_value("exchange_build_info", labels) == 1.0


async def test_reflection_lets_grpcurl_list_and_call(exchange: Exchange) -> None:
    services = (await _grpcurl("-plaintext", exchange.target, "list")).split()
    assert {
        "exchange.v1.OrderCommandService",
        "exchange.v1.OrderQueryService",
        "exchange.v1.MarketDataService",
        "exchange.v1.DiagnosticsService",
        "grpc.health.v1.Health",
    } <= set(services)
    answer = json.loads(
        await _grpcurl(
            "-plaintext",
            "-H",
            f"authorization: Bearer {TEST_ADMIN_API_KEY}",
            "-d",
            "{}",
            exchange.target,
            "exchange.v1.OrderQueryService/ListInstruments",
        )
    )
    assert answer == {
        "instruments": [
            {
                "symbol": "BTC-USD",
                "tick_size": "0.01",
                "lot_size": "0.0001",
                "status": "INSTRUMENT_STATUS_TRADING",
                "base_asset": "BTC",
                "quote_asset": "USD",
            },
            {
                "symbol": "ETH-USD",
                "tick_size": "0.01",
                "lot_size": "0.001",
                "status": "INSTRUMENT_STATUS_TRADING",
                "base_asset": "ETH",
                "quote_asset": "USD",
            },
        ]
    }


async def test_list_instruments_and_ping(exchange: Exchange) -> None:
    listed = await exchange.queries.ListInstruments(query.ListInstrumentsRequest())
    assert [(i.symbol, i.tick_size, i.lot_size) for i in listed.instruments] == [
        ("BTC-USD", "0.01", "0.0001"),
        ("ETH-USD", "0.01", "0.001"),
    ]
    assert await exchange.diagnostics.Ping(diagnostics.PingRequest()) == diagnostics.PingResponse()


async def test_stream_ping_answers_every_request_with_its_id(exchange: Exchange) -> None:
    async def requests() -> AsyncIterator[diagnostics.StreamPingRequest]:
        for request_id in (7, 3, 11):
            yield diagnostics.StreamPingRequest(request_id=request_id)

    answers = [answer async for answer in exchange.diagnostics.StreamPing(requests())]
    assert [answer.request_id for answer in answers] == [7, 3, 11]


async def test_engine_in_a_child_process_matches_and_stops_with_the_app(
    fresh_database_url: str, service_redis_url: str
) -> None:
    from service_harness import service_settings
    from service_helpers import BUY, SELL, limit

    from clients.generated.exchange.v1 import order_command_service_pb2_grpc as commands
    from clients.generated.exchange.v1 import order_query_service_pb2_grpc as queries
    from clients.generated.exchange.v1 import types_pb2 as types
    from server.app import ExchangeApp

    app = ExchangeApp(service_settings(fresh_database_url, service_redis_url, engine_process=True))
    await app.start()
    try:
        assert app.engine_runner is None and app.engine_child is not None
        async with account_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            place = commands.OrderCommandServiceStub(channel).PlaceOrder
            get = queries.OrderQueryServiceStub(channel).GetOrder
            await place(limit("alice", SELL, "100.00", "1.0"))
            taker = await place(limit("bob", BUY, "100.00", "1.0"))
            async with asyncio.timeout(60):  # bound only: the child starts Python first
                while True:
                    answer = await get(
                        query.GetOrderRequest(
                            order_id=taker.order.order_id, min_position=taker.position
                        )
                    )
                    if answer.order.status != types.ORDER_STATUS_PENDING:
                        break
                    await asyncio.sleep(0.05)
            assert answer.order.status == types.ORDER_STATUS_FILLED
    finally:
        await app.stop()
    assert not app.engine_child.running


async def test_queries_answer_when_the_views_are_built_by_another_process(
    fresh_database_url: str, service_redis_url: str
) -> None:
    """With PROJECTIONS_ENABLED=0 the builders run elsewhere (or not yet): the query RPCs
    still find their tables, so an unknown order is NOT_FOUND and a user with no views
    yet has no orders, instead of an internal error about a missing table."""
    import grpc
    from service_harness import service_settings

    from clients.generated.exchange.v1 import order_query_service_pb2_grpc as queries
    from server.app import ExchangeApp

    app = ExchangeApp(
        service_settings(
            fresh_database_url, service_redis_url, engine_enabled=False, projections_enabled=False
        )
    )
    await app.start()
    try:
        # No engine runs here to answer a deposit: the accounts are not funded.
        async with account_channel(f"127.0.0.1:{app.grpc_port}", funding=None) as channel:
            stub = queries.OrderQueryServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetOrder(query.GetOrderRequest(order_id="no-such-order"))
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            listed = await stub.ListOrders(query.ListOrdersRequest(user_id="alice"))
            assert list(listed.orders) == []
    finally:
        await app.stop()
