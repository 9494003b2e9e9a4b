"""Identities end to end (issue 13): keys at the door of every RPC, owner-only access,
revocation across servers, the bootstrap key, and no secret in the log.

These tests call through bare channels (no harness key interceptor) with the keys they
mean: none, a read-only key, a trade key, or the admin key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import grpc
import pytest
from api_keys import TEST_ADMIN_API_KEY, bearer
from google.protobuf import message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from rpc_methods import exchange_methods
from service_harness import Exchange, running_exchange, service_settings
from service_helpers import BTC, BUY, SELL, limit

from clients.generated.exchange.v1 import admin_service_pb2 as admin
from clients.generated.exchange.v1 import admin_service_pb2_grpc as admin_grpc
from clients.generated.exchange.v1 import market_data_service_pb2 as md
from clients.generated.exchange.v1 import market_data_service_pb2_grpc as md_grpc
from clients.generated.exchange.v1 import order_command_service_pb2 as cmd
from clients.generated.exchange.v1 import order_command_service_pb2_grpc as cmd_grpc
from clients.generated.exchange.v1 import order_query_service_pb2 as query
from clients.generated.exchange.v1 import order_query_service_pb2_grpc as query_grpc
from clients.generated.exchange.v1 import types_pb2 as types
from server.app import ExchangeApp
from server.identity.keyring import BootstrapKeyTooShort
from server.identity.scopes import REQUIRED_SCOPE, Scope
from server.log_contract.layout import api_key_stream

BOUND_S = 30.0
REVOCATION_BOUND_S = 1.0


# (full method path, method descriptor) of every RPC of every exchange service.
METHODS = [(f"/{service}/{method.name}", method) for service, method in exchange_methods()]


async def _call(
    channel: grpc.aio.Channel, path: str, method: Any, key: str | None
) -> grpc.StatusCode:
    """The status of one call of `method` with an empty request (and `key`, if any)."""
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    kind = (
        ("stream" if method.client_streaming else "unary")
        + "_"
        + ("stream" if method.server_streaming else "unary")
    )
    multicallable = getattr(channel, kind)(
        path,
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    metadata = bearer(key) if key is not None else None

    async def no_requests() -> AsyncIterator[Any]:
        return
        yield

    request: Any = no_requests() if method.client_streaming else request_class()
    try:
        call = multicallable(request, metadata=metadata, timeout=BOUND_S)
        if method.server_streaming:
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _head(exchange: Exchange) -> object:
    assert exchange.app.event_store is not None
    return await exchange.app.event_store.last_committed_position()


async def _issue(channel: grpc.aio.Channel, user_id: str, *scopes: int) -> str:
    answer = await admin_grpc.AdminServiceStub(channel).IssueApiKey(
        admin.IssueApiKeyRequest(user_id=user_id, scopes=list(scopes)),
        metadata=bearer(TEST_ADMIN_API_KEY),
        timeout=BOUND_S,
    )
    return answer.api_key


@pytest.fixture
async def bare(exchange: Exchange) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(exchange.target) as channel:
        yield channel


async def test_every_rpc_refuses_a_missing_key_and_a_key_without_its_scope(
    exchange: Exchange, bare: grpc.aio.Channel
) -> None:
    reader = await _issue(bare, "reader", admin.SCOPE_READ)
    trader = await _issue(bare, "trader", admin.SCOPE_TRADE)
    head = await _head(exchange)
    counted_before = {result: _authentications(result) for result in _AUTH_RESULTS}
    refused: dict[str, tuple[grpc.StatusCode, ...]] = {}
    for path, method in METHODS:
        answers = [await _call(bare, path, method, None)]
        needs = REQUIRED_SCOPE[path]
        if needs is not Scope.READ:
            answers.append(await _call(bare, path, method, reader))
        if needs is Scope.ADMIN:
            answers.append(await _call(bare, path, method, trader))
        refused[path] = tuple(answers)
    expected = {
        path: (grpc.StatusCode.UNAUTHENTICATED,)
        + {
            Scope.READ: (),
            Scope.TRADE: (grpc.StatusCode.PERMISSION_DENIED,),
            Scope.ADMIN: (grpc.StatusCode.PERMISSION_DENIED,) * 2,
        }[REQUIRED_SCOPE[path]]
        for path, _ in METHODS
    }
    assert refused == expected
    assert await _head(exchange) == head
    # Each refusal is counted by its result in exchange_authentications_total.
    counted = {
        result: _authentications(result) - counted_before[result] for result in _AUTH_RESULTS
    }
    assert counted == {
        "unauthenticated": len(METHODS),
        "permission_denied": sum(len(answers) - 1 for answers in expected.values()),
    }


_AUTH_RESULTS = ("unauthenticated", "permission_denied")


def _authentications(result: str) -> float:
    value = REGISTRY.get_sample_value("exchange_authentications_total", {"result": result})
    return value or 0.0


async def test_health_and_reflection_need_no_key(
    exchange: Exchange, bare: grpc.aio.Channel
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    answer = await health_pb2_grpc.HealthStub(bare).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=BOUND_S
    )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_account_sees_only_its_own_orders_and_an_admin_sees_and_cancels_them(
    exchange: Exchange, bare: grpc.aio.Channel
) -> None:
    alice, bob = (
        await _issue(bare, "alice", admin.SCOPE_TRADE),
        await _issue(bare, "bob", admin.SCOPE_TRADE),
    )
    commands, queries = (
        cmd_grpc.OrderCommandServiceStub(bare),
        query_grpc.OrderQueryServiceStub(bare),
    )
    bobs_updates = md_grpc.MarketDataServiceStub(bare).StreamOrderUpdates(
        md.StreamOrderUpdatesRequest(), metadata=bearer(bob), timeout=BOUND_S
    )
    # No user_id: the key's account.
    placed = await commands.PlaceOrder(
        limit("", SELL, "100.00", "1.0"), metadata=bearer(alice), timeout=BOUND_S
    )
    order_id = placed.order.order_id
    assert placed.order.user_id == "alice"
    await exchange.settle(placed.position)
    head = await _head(exchange)

    async def bobs(call: Any) -> grpc.StatusCode:
        try:
            await call
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    as_bob = bearer(bob)
    assert [
        await bobs(queries.GetOrder(query.GetOrderRequest(order_id=order_id), metadata=as_bob)),
        await bobs(
            commands.CancelOrder(cmd.CancelOrderRequest(order_id=order_id), metadata=as_bob)
        ),
        await bobs(
            commands.AmendOrder(
                cmd.AmendOrderRequest(order_id=order_id, quantity="2"), metadata=as_bob
            )
        ),
        await bobs(queries.ListOrders(query.ListOrdersRequest(user_id="alice"), metadata=as_bob)),
        await bobs(commands.PlaceOrder(limit("alice", BUY, "1.00", "1"), metadata=as_bob)),
    ] == [
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.PERMISSION_DENIED,
    ]
    listed = await queries.ListOrders(query.ListOrdersRequest(), metadata=as_bob)
    assert list(listed.orders) == []
    assert await _head(exchange) == head

    as_admin = bearer(TEST_ADMIN_API_KEY)
    seen = await queries.ListOrders(query.ListOrdersRequest(user_id="alice"), metadata=as_admin)
    assert [order.order_id for order in seen.orders] == [order_id]
    got = await queries.GetOrder(query.GetOrderRequest(order_id=order_id), metadata=as_admin)
    assert got.order.user_id == "alice"
    with pytest.raises(grpc.aio.AioRpcError) as placing:
        await commands.PlaceOrder(limit("alice", BUY, "1.00", "1"), metadata=as_admin)
    assert placing.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await _head(exchange) == head
    cancelled = await commands.CancelOrder(
        cmd.CancelOrderRequest(order_id=order_id, wait_for_outcome=True),
        metadata=as_admin,
        timeout=BOUND_S,
    )
    assert cancelled.order.status == types.ORDER_STATUS_CANCELLED
    assert cancelled.order.user_id == "alice"

    # Bob's own order reaches his update stream; alice's never did.
    mine = await commands.PlaceOrder(limit("", BUY, "90.00", "1.0"), metadata=as_bob)
    async with asyncio.timeout(BOUND_S):
        update = await bobs_updates.read()
    bobs_updates.cancel()
    assert (update.order.order_id, update.order.user_id) == (mine.order.order_id, "bob")


async def test_issue_list_and_revoke_keys(exchange: Exchange, bare: grpc.aio.Channel) -> None:
    admin_stub = admin_grpc.AdminServiceStub(bare)
    as_admin = bearer(TEST_ADMIN_API_KEY)
    key = await _issue(bare, "dora", admin.SCOPE_READ)
    await query_grpc.OrderQueryServiceStub(bare).ListInstruments(
        query.ListInstrumentsRequest(), metadata=bearer(key)
    )
    listed = await admin_stub.ListApiKeys(
        admin.ListApiKeysRequest(user_id="dora"), metadata=as_admin
    )
    assert len(listed.keys) == 1
    info = listed.keys[0]
    assert (info.user_id, list(info.scopes), info.revoked) == ("dora", [admin.SCOPE_READ], False)
    assert info.HasField("created_at") and info.HasField("last_used_at")
    assert key not in str(listed) and key.split("_")[-1] not in str(listed)

    await admin_stub.RevokeApiKey(admin.RevokeApiKeyRequest(key_id=info.key_id), metadata=as_admin)
    head = await _head(exchange)
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await admin_stub.RevokeApiKey(
            admin.RevokeApiKeyRequest(key_id=info.key_id), metadata=as_admin
        )
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await admin_stub.RevokeApiKey(
            admin.RevokeApiKeyRequest(key_id="0123456789abcdef"), metadata=as_admin
        )
    with pytest.raises(grpc.aio.AioRpcError) as revoked:
        await query_grpc.OrderQueryServiceStub(bare).ListInstruments(
            query.ListInstrumentsRequest(), metadata=bearer(key)
        )
    assert (again.value.code(), unknown.value.code(), revoked.value.code()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert await _head(exchange) == head
    listed = await admin_stub.ListApiKeys(
        admin.ListApiKeysRequest(user_id="dora"), metadata=as_admin
    )
    assert [k.revoked for k in listed.keys] == [True]


async def test_the_issued_secret_is_never_in_the_log(
    exchange: Exchange, bare: grpc.aio.Channel, fresh_database_url: str
) -> None:
    key = await _issue(bare, "erin", admin.SCOPE_TRADE)
    secret = key.rsplit("_", 1)[1]
    connection = await asyncpg.connect(fresh_database_url)
    try:
        rows = await connection.fetch(
            "SELECT type, data::text AS data, metadata::text AS meta FROM es_events"
        )
    finally:
        await connection.close()
    assert any(row["type"] == "ApiKeyIssued" for row in rows)
    assert [row["type"] for row in rows if secret in row["data"] or secret in row["meta"]] == []
    assert not any(TEST_ADMIN_API_KEY in row["data"] for row in rows)


async def test_a_revocation_is_refused_within_a_second_on_another_server(
    exchange: Exchange, bare: grpc.aio.Channel
) -> None:
    second_settings = replace(
        exchange.app.settings, engine_enabled=False, projections_enabled=False, grpc_port=0
    )
    async with running_exchange(second_settings) as second:
        key = await _issue(bare, "fay", admin.SCOPE_READ)
        key_id = key.split("_")[1]
        async with grpc.aio.insecure_channel(second.target) as other:
            follower = second.app.key_ring_follower
            assert follower is not None and exchange.app.event_store is not None
            issued = (await exchange.app.event_store.read_stream(api_key_stream(key_id)))[-1]
            assert await follower.wait_until(issued.position, REVOCATION_BOUND_S)
            queries = query_grpc.OrderQueryServiceStub(other)
            await queries.ListInstruments(query.ListInstrumentsRequest(), metadata=bearer(key))

            await admin_grpc.AdminServiceStub(bare).RevokeApiKey(
                admin.RevokeApiKeyRequest(key_id=key_id), metadata=bearer(TEST_ADMIN_API_KEY)
            )
            started = time.monotonic()
            revoked = (await exchange.app.event_store.read_stream(api_key_stream(key_id)))[-1]
            assert await follower.wait_until(revoked.position, REVOCATION_BOUND_S)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await queries.ListInstruments(query.ListInstrumentsRequest(), metadata=bearer(key))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert time.monotonic() - started < REVOCATION_BOUND_S


async def test_a_bootstrap_key_shorter_than_32_characters_refuses_the_start(
    fresh_database_url: str, service_redis_url: str
) -> None:
    app = ExchangeApp(
        service_settings(fresh_database_url, service_redis_url, admin_api_key="x" * 31)
    )
    with pytest.raises(BootstrapKeyTooShort, match="at least 32 characters"):
        await app.start()
    await app.stop()


async def test_public_market_data_needs_no_key_but_accounts_still_do(
    fresh_database_url: str, service_redis_url: str
) -> None:
    public = service_settings(fresh_database_url, service_redis_url, public_market_data=True)
    async with (
        running_exchange(public) as exchange,
        grpc.aio.insecure_channel(exchange.target) as bare,
    ):
        # An order first, through the keyed channel: once it is in the views, the books
        # are built (just after start they may still be, and answer UNAVAILABLE).
        placed = await exchange.commands.PlaceOrder(
            limit("alice", SELL, "100.00", "1.0"), timeout=BOUND_S
        )
        await exchange.settle(placed.position)
        queries = query_grpc.OrderQueryServiceStub(bare)
        book = await queries.GetOrderBook(query.GetOrderBookRequest(instrument=BTC))
        assert (book.instrument, [level.price for level in book.asks]) == (BTC, ["100.00"])
        with pytest.raises(grpc.aio.AioRpcError) as private:
            await queries.ListOrders(query.ListOrdersRequest(user_id="alice"))
        assert private.value.code() == grpc.StatusCode.UNAUTHENTICATED


# Printable ASCII (what gRPC metadata values may hold), around the Bearer scheme.
GARBAGE = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=120).map(
        lambda text: f"Bearer {text}"
    ),
    st.from_regex(r"Bearer exk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", fullmatch=True),
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=GARBAGE)
async def test_any_garbage_authorization_is_unauthenticated(exchange: Exchange, value: str) -> None:
    async with grpc.aio.insecure_channel(exchange.target) as bare:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await query_grpc.OrderQueryServiceStub(bare).ListInstruments(
                query.ListInstrumentsRequest(),
                metadata=(("authorization", value),),
                timeout=BOUND_S,
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


# Values another account's key may put in the fields that name an account or an order.
_PROBE_TEXT = st.one_of(
    st.sampled_from(["alice", "ALICE", "alice ", " alice", "alice\x00", "*", "%", "", "admin"]),
    st.text(min_size=0, max_size=12),
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(user_id=_PROBE_TEXT, order_suffix=_PROBE_TEXT, use_the_real_id=st.booleans())
async def test_no_request_field_gives_one_account_anothers_data(
    exchange: Exchange, user_id: str, order_suffix: str, use_the_real_id: bool
) -> None:
    """Bob's key, whatever the request says, never reads, changes or sees alice's order:
    every answer is a refusal or bob's own data, and alice's order stays as it was."""
    assert exchange.keys is not None
    as_bob = bearer(await exchange.keys.key_for("bob"))
    alices = await _alices_open_order(exchange)
    order_id = alices if use_the_real_id else alices + order_suffix
    channel = exchange.channel
    commands = cmd_grpc.OrderCommandServiceStub(channel)
    queries = query_grpc.OrderQueryServiceStub(channel)
    calls = (
        queries.GetOrder(
            query.GetOrderRequest(order_id=order_id, user_id=user_id), metadata=as_bob
        ),
        commands.CancelOrder(
            cmd.CancelOrderRequest(order_id=order_id, user_id=user_id), metadata=as_bob
        ),
        commands.AmendOrder(
            cmd.AmendOrderRequest(order_id=order_id, user_id=user_id, quantity="2"),
            metadata=as_bob,
        ),
        queries.ListOrders(query.ListOrdersRequest(user_id=user_id), metadata=as_bob),
        commands.CancelAllOrders(cmd.CancelAllOrdersRequest(user_id=user_id), metadata=as_bob),
    )
    for call in calls:
        try:
            answer = await call
        except grpc.aio.AioRpcError as error:
            assert error.code() in (
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.INVALID_ARGUMENT,
            ), error
            continue
        assert alices not in str(answer), answer  # an OK answer is bob's own, never alice's
    got = await exchange.queries.GetOrder(query.GetOrderRequest(order_id=alices), timeout=BOUND_S)
    assert (got.order.user_id, got.order.status, got.order.quantity) == (
        "alice",
        types.ORDER_STATUS_OPEN,
        "1.0000",
    )


async def _alices_open_order(exchange: Exchange) -> str:
    """Alice's resting order (placed once per exchange)."""
    listed = await exchange.queries.ListOrders(
        query.ListOrdersRequest(user_id="alice"), timeout=BOUND_S
    )
    for order in listed.orders:
        if order.status == types.ORDER_STATUS_OPEN:
            return str(order.order_id)
    placed = await exchange.commands.PlaceOrder(
        limit("alice", SELL, "100.00", "1.0"), timeout=BOUND_S
    )
    await exchange.settle(placed.position)
    return str(placed.order.order_id)
