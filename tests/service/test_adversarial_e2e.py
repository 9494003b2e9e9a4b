"""Every RPC of exchange.v1 under hostile input, through real gRPC, PostgreSQL and Redis.

The RPCs are enumerated from the service descriptors and their requests built from the
message descriptors (`adversarial_inputs`): NUL and control characters, ANSI escapes, RTL
overrides, 10,000-character values, decimals no plain parser should take, enum numbers
the proto does not name, timestamps outside what the log's readers hold, page and position
tokens that are garbage or beyond the log. Three ways in:

- Hypothesis draws requests for each RPC, usually one field bad and the rest good;
- Hypothesis draws mostly-valid orders with one field spoiled, through PlaceOrder and
  StreamPlaceOrders, and knows which must be refused (naming that field) or accepted;
- the sweep sends every catalogued hostile value in every field of every RPC, one at a
  time, so each reaches that field's own checks on every run; it lists all it finds.

After each call:

1. the answer is OK or a documented client error (INVALID_ARGUMENT, NOT_FOUND,
   PERMISSION_DENIED, FAILED_PRECONDITION, ALREADY_EXISTS, OUT_OF_RANGE; DEADLINE_EXCEEDED
   only for the short deadline a stream subscription is given), never UNKNOWN, INTERNAL
   or RESOURCE_EXHAUSTED; an INVALID_ARGUMENT names a field of the request in its
   google.rpc.BadRequest; no message is 1 KB or longer, or quotes more than a few dozen
   characters of a value sent; a request carrying a value the door must refuse
   (`poisoned_fields`) is never answered OK; a place answered as a duplicate asked for the
   original order's terms (other terms are ALREADY_EXISTS);
2. nothing was appended for a refused command: the log's head has not moved when no
   command was accepted, and exactly one request event was appended per accepted one;
3. the views keep up with the log: a valid follow-up order is visible through GetOrder at
   its own position, within a bound, and the engine has handled it (the sweep makes the
   follow-up after each accepted command and at the end of each RPC).

One exchange serves the whole module with the clock off (only commands move the log), so
the calls share its state as clients of one exchange do; after the follow-up the engine
and the views have caught up, and the next call starts from a still log. Hypothesis is
derandomized: CI runs the same examples every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import pkgutil
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from adversarial_inputs import (
    SEED_FILLED_BUY,
    SEED_FILLED_SELL,
    SEED_OPEN,
    UNKNOWN_ENUM_NUMBERS,
    HeadToken,
    Stamp,
    field_values,
    place_expectation,
    poisoned_fields,
    poisoned_place_specs,
    request_specs,
    shaped_for,
    stream_specs,
)
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import event as count_example
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument as NotInAHypothesisTest
from service_harness import (
    Exchange,
    create_database,
    drop_database,
    redis_url_with_db,
    running_exchange,
    service_settings,
)

from clients.generated.exchange import v1 as exchange_v1
from clients.generated.exchange.v1 import (
    order_command_service_pb2,
    order_query_service_pb2,
)
from clients.generated.exchange.v1 import types_pb2 as types
from server.eventstore.port import LogPosition
from server.log_contract.layout import REQUEST_EVENT_TYPES

# A Redis database of this module's own: the other service tests FLUSHDB theirs per test.
ADVERSARIAL_TEST_REDIS_DB = 14
UNARY_TIMEOUT_S = 10.0
# How long a server stream is given to answer or refuse; a valid subscription that has
# nothing to send yet ends with DEADLINE_EXCEEDED, the one wait the suite asks for.
STREAM_DEADLINE_S = 1.0
# The follow-up order must be visible, and handled by the engine, within this.
VIEWS_BOUND_S = 20.0
MAX_MESSAGE_BYTES = 1024
# docs/api.md: "Messages quote at most ~40 characters of a bad value".
MAX_QUOTED_CHARS = 64

CLIENT_ERRORS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
CODE_OF_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
ADMIN_SERVICE = "exchange.v1.AdminService"
# Calls that append one request when accepted (the money ones: issue 14).
COMMAND_METHODS = frozenset(
    {
        "PlaceOrder",
        "CancelOrder",
        "AmendOrder",
        "CancelAllOrders",
        "Deposit",
        "Withdraw",
        "SetInstrumentStatus",
    }
)

SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the RPCs, from the descriptors --------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    service: str
    method: MethodDescriptor

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def request_type(self) -> Descriptor:
        return self.method.input_type

    def __repr__(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.name}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _service_modules() -> list[Any]:
    """Every generated message module of exchange.v1 (a new proto file is found too)."""
    return [
        importlib.import_module(f"{exchange_v1.__name__}.{module.name}")
        for module in pkgutil.iter_modules(exchange_v1.__path__)
        if module.name.endswith("_pb2")
    ]


RPCS = [
    Rpc(service.full_name, method)
    for module in _service_modules()
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def message_class(descriptor: Descriptor) -> Any:
    return message_factory.GetMessageClass(descriptor)


# -- building a request from its spec -------------------------------------------------------


def build(descriptor: Descriptor, spec: Mapping[str, Any], head: LogPosition) -> Any:
    """The protobuf message a spec describes, placeholders resolved against the head."""
    message = message_class(descriptor)()
    for name, value in spec.items():
        field_descriptor = descriptor.fields_by_name[name]
        if isinstance(value, Stamp):
            stamp = getattr(message, name)
            stamp.seconds, stamp.nanos = value.seconds, value.nanos
        elif isinstance(value, HeadToken):
            setattr(message, name, value.resolve(head.tx, head.seq))
        elif isinstance(value, dict):
            getattr(message, name).CopyFrom(build(field_descriptor.message_type, value, head))
        elif isinstance(value, list):
            getattr(message, name).extend(value)
        elif field_descriptor.is_repeated:
            getattr(message, name).append(value)  # the sweep's one value of a list
        else:
            setattr(message, name, value)
    return message


# -- one call and what came back -------------------------------------------------------------


@dataclass
class Answer:
    """A status, or an in-stream CommandError, as the checks read it."""

    code: grpc.StatusCode
    message: str = ""
    violations: list[tuple[str, str, str]] = field(default_factory=list)
    detail_bytes: int = 0


@dataclass
class Outcome:
    status: Answer
    # StreamPlaceOrders: one answer per request id; "placed" answers are Answer(OK).
    stream_answers: dict[int, list[Answer]] = field(default_factory=dict)
    accepted_commands: int = 0
    # Orders a place answered as duplicates (an earlier one with its client_order_id), by
    # request id (0 for a unary PlaceOrder).
    duplicates: dict[int, Any] = field(default_factory=dict)


def _answer_of(error: grpc.aio.AioRpcError) -> Answer:
    violations: list[tuple[str, str, str]] = []
    detail_bytes = 0
    status = rpc_status.from_call(error)
    if status is not None:
        detail_bytes = status.ByteSize()
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    (v.field, v.reason, v.description) for v in bad_request.field_violations
                )
    return Answer(error.code(), error.details() or "", violations, detail_bytes)


async def _requests(messages: list[Any]) -> AsyncIterator[Any]:
    for message in messages:
        yield message


async def call(exchange: Exchange, rpc: Rpc, specs: list[dict[str, Any]]) -> Outcome:
    """Make the call; a server stream is read to its first message or its short deadline,
    a client stream sends every request and reads every answer."""
    head = await log_head(exchange)
    messages = [build(rpc.request_type, spec, head) for spec in specs]
    serialize = message_class(rpc.request_type).SerializeToString
    parse = message_class(rpc.method.output_type).FromString
    channel, method = exchange.channel, rpc.method
    outcome = Outcome(Answer(grpc.StatusCode.OK))
    try:
        if not method.client_streaming and not method.server_streaming:
            response = await channel.unary_unary(rpc.path, serialize, parse)(
                messages[0], timeout=UNARY_TIMEOUT_S
            )
            transfer = getattr(response, "transfer", None)
            duplicate = getattr(response, "duplicate", False) or (
                transfer is not None and transfer.duplicate
            )
            outcome.accepted_commands = int(rpc.name in COMMAND_METHODS and not duplicate)
            if duplicate and transfer is None:
                outcome.duplicates[0] = response.order
        elif not method.client_streaming:
            stream = channel.unary_stream(rpc.path, serialize, parse)(
                messages[0], timeout=STREAM_DEADLINE_S
            )
            try:
                await stream.read()  # a first message (or the end): the stream answered
            finally:
                stream.cancel()
        else:
            assert method.server_streaming, f"{rpc!r}: a client-streaming-only RPC is new here"
            bidi = channel.stream_stream(rpc.path, serialize, parse)(
                _requests(messages), timeout=UNARY_TIMEOUT_S
            )
            async for response in bidi:
                _take_stream_answer(outcome, response)
    except grpc.aio.AioRpcError as error:
        outcome.status = _answer_of(error)
    return outcome


def _take_stream_answer(outcome: Outcome, response: Any) -> None:
    """One answer of a bidirectional stream: StreamPlaceOrders' placed or error, or a plain
    echo (StreamPing)."""
    answer = Answer(grpc.StatusCode.OK)
    oneofs = response.DESCRIPTOR.oneofs_by_name
    result = response.WhichOneof("result") if "result" in oneofs else None
    if result == "error":
        error = response.error
        answer = Answer(
            CODE_OF_NUMBER.get(error.code, grpc.StatusCode.UNKNOWN),
            error.message,
            [(v.field, v.reason, v.description) for v in error.field_violations],
            error.ByteSize(),
        )
    elif result == "placed" and response.placed.duplicate:
        outcome.duplicates[response.request_id] = response.placed.order
    elif result == "placed":
        outcome.accepted_commands += 1
    outcome.stream_answers.setdefault(response.request_id, []).append(answer)


# -- the checks ------------------------------------------------------------------------------


def field_names(descriptor: Descriptor) -> set[str]:
    """Every field name in a request and the messages it holds."""
    names: set[str] = set()
    for each in descriptor.fields:
        names.add(each.name)
        if each.message_type is not None and each.message_type.name != "Timestamp":
            names |= field_names(each.message_type)
    return names


def tally(label: str) -> None:
    """Count an outcome in Hypothesis' statistics (the sweep runs outside Hypothesis)."""
    with contextlib.suppress(NotInAHypothesisTest):
        count_example(label)


def long_values(spec: Any) -> list[str]:
    """The strings of a spec longer than an error message may quote."""
    if isinstance(spec, str):
        return [spec] if len(spec) > MAX_QUOTED_CHARS else []
    if isinstance(spec, dict):
        return [text for value in spec.values() for text in long_values(value)]
    if isinstance(spec, list):
        return [text for value in spec for text in long_values(value)]
    return []


def check_answer(
    rpc: Rpc,
    answer: Answer,
    poisoned: list[str],
    *,
    sent: Any = None,
    may_time_out: bool = False,
) -> None:
    """(1): a documented status; a refusal that names its field, in a short message that
    quotes no more than a few dozen characters of what was `sent`."""
    allowed = CLIENT_ERRORS | {grpc.StatusCode.OK}
    if may_time_out:
        allowed |= {grpc.StatusCode.DEADLINE_EXCEEDED}
    assert answer.code in allowed, f"{rpc!r} answered {answer.code.name}: {answer.message[:300]!r}"
    assert len(answer.message.encode()) < MAX_MESSAGE_BYTES, (
        f"{rpc!r} {answer.code.name} message of {len(answer.message.encode())} bytes"
    )
    assert answer.detail_bytes < MAX_MESSAGE_BYTES, (
        f"{rpc!r} {answer.code.name} details of {answer.detail_bytes} bytes"
    )
    said = " ".join([answer.message, *(description for _, _, description in answer.violations)])
    for value in long_values(sent):
        for quoted in (value[: MAX_QUOTED_CHARS + 1], repr(value)[1 : MAX_QUOTED_CHARS + 2]):
            assert quoted not in said, (
                f"{rpc!r} {answer.code.name} quotes more than {MAX_QUOTED_CHARS} characters of"
                f" a value: {answer.message[:120]!r}..."
            )
    if answer.code == grpc.StatusCode.INVALID_ARGUMENT:
        assert answer.violations, f"{rpc!r} INVALID_ARGUMENT names no field: {answer.message!r}"
        known = field_names(rpc.request_type)
        for name, reason, _ in answer.violations:
            assert name.split(".")[0] in known, f"{rpc!r} names {name!r}, not a request field"
            assert reason, f"{rpc!r} violation of {name!r} without a reason code"
    if poisoned:
        assert answer.code != grpc.StatusCode.OK, f"{rpc!r} accepted poisoned {poisoned}"
        assert answer.code != grpc.StatusCode.DEADLINE_EXCEEDED, (
            f"{rpc!r} did not refuse poisoned {poisoned} within {STREAM_DEADLINE_S} s"
        )


def check_outcome(rpc: Rpc, specs: list[dict[str, Any]], outcome: Outcome) -> None:
    """(1) for a call's status and, on a bidirectional stream, for each request's answer."""
    now = datetime.now(UTC)
    method = rpc.method
    if not method.client_streaming:
        check_answer(
            rpc,
            outcome.status,
            poisoned_fields(rpc.request_type, specs[0], now),
            sent=specs,
            may_time_out=method.server_streaming,
        )
        tally(f"{rpc!r}: {outcome.status.code.name}")
        if 0 in outcome.duplicates:
            check_same_terms(rpc, specs[0], outcome.duplicates[0])
        return
    check_answer(rpc, outcome.status, [], sent=specs)
    sent = Counter(spec.get("request_id", 0) for spec in specs)
    answered = Counter({request_id: len(a) for request_id, a in outcome.stream_answers.items()})
    assert answered == sent, f"{rpc!r}: requests {dict(sent)}, answers {dict(answered)}"
    order_field = rpc.request_type.fields_by_name.get("order")
    answers = {request_id: list(a) for request_id, a in outcome.stream_answers.items()}
    for spec in specs:
        answer = answers[spec.get("request_id", 0)].pop()
        poisoned: list[str] = []
        if order_field is not None:
            poisoned = poisoned_fields(order_field.message_type, spec.get("order", {}), now)
        if len(answered) != len(specs):
            poisoned = []  # repeated request ids: answers cannot be paired with requests
        check_answer(rpc, answer, poisoned, sent=spec)
        tally(f"{rpc!r} in stream: {answer.code.name}")
        request_id = spec.get("request_id", 0)
        if request_id in outcome.duplicates and len(answered) == len(specs):
            check_same_terms(rpc, spec.get("order", {}), outcome.duplicates[request_id])


def _amount(text: str) -> Decimal | None:
    return Decimal(text) if text else None


def check_same_terms(rpc: Rpc, spec: Mapping[str, Any], order: Any) -> None:
    """A place answered as a duplicate asked for what the original order holds: the same
    client_order_id with other terms is ALREADY_EXISTS, never the first order."""
    asked = (
        spec.get("instrument", ""),
        spec.get("side", 0),
        spec.get("type", 0),
        _amount(spec.get("price", "")),
        _amount(spec.get("quantity", "")),
        _amount(spec.get("stop_price", "")),
        spec.get("time_in_force", 0) or types.TIME_IN_FORCE_GTC,
        spec.get("post_only", False),
    )
    held = (
        order.instrument,
        order.side,
        order.type,
        _amount(order.price),
        _amount(order.quantity),
        _amount(order.stop_price),
        order.time_in_force,
        order.post_only,
    )
    assert asked == held, (
        f"{rpc!r} answered a duplicate with other terms: asked {asked}, got {held}"
    )


async def log_head(exchange: Exchange) -> LogPosition:
    store = exchange.app.event_store
    assert store is not None
    head = await store.last_committed_position()
    assert head is not None, "the suite seeds the log before the first example"
    return head


async def request_events_after(exchange: Exchange, after: LogPosition, upto: LogPosition) -> int:
    """How many command request events the log holds in (after, upto]. Read through a
    subscription: a single read may stop short of a position already seen (the horizon
    counts a transaction of another database that ended during the read)."""
    store = exchange.app.event_store
    assert store is not None
    count = 0
    async with asyncio.timeout(VIEWS_BOUND_S):
        async with contextlib.aclosing(store.subscribe_all(after=after)) as events:
            async for event in events:
                count += event.type in REQUEST_EVENT_TYPES
                if event.position >= upto:
                    break
    return count


@dataclass
class ServiceHealth:
    """The first example after which the views or the engine stopped keeping up."""

    stuck_since: str | None = None


HEALTH = ServiceHealth()


def assert_keeping_up() -> None:
    assert HEALTH.stuck_since is None, f"views or engine stopped keeping up: {HEALTH.stuck_since}"


async def follow_up(exchange: Exchange) -> LogPosition:
    """(3): a valid order placed now is visible at its position and handled by the engine."""
    placed = await exchange.commands.PlaceOrder(
        order_command_service_pb2.PlaceOrderRequest(
            user_id="follow-up",
            instrument="BTC-USD",
            side=types.SIDE_BUY,
            type=types.ORDER_TYPE_LIMIT,
            price="1.00",
            quantity="1",
        ),
        timeout=UNARY_TIMEOUT_S,
    )
    seen = await exchange.queries.GetOrder(
        order_query_service_pb2.GetOrderRequest(
            order_id=placed.order.order_id, min_position=placed.position
        ),
        timeout=VIEWS_BOUND_S,
    )
    assert seen.order.order_id == placed.order.order_id
    position = LogPosition.parse(placed.position)
    await settle(exchange, position)
    return position


async def settle(exchange: Exchange, position: LogPosition) -> None:
    """Wait (bounded) until the engine handled `position` and the views hold its results,
    so the next example starts from a log nobody is appending to."""
    runner = exchange.app.engine_runner
    assert runner is not None
    await asyncio.wait_for(runner.wait_processed(position), VIEWS_BOUND_S)
    if runner.last_result_position is not None:
        reached = await exchange.app.projections.progress.wait_for(
            runner.last_result_position, VIEWS_BOUND_S
        )
        assert reached, "views did not reach the engine's last result"


async def run_example(
    exchange: Exchange, rpc: Rpc, specs: list[dict[str, Any]], *, follow_up_always: bool = True
) -> Outcome:
    """One example: the call, then checks (2) and (3) (the caller checks the answer: (1)).
    With `follow_up_always` off (the sweep), the follow-up is made only after an accepted
    command, which it waits for, so that the next call starts from a still log again."""
    assert_keeping_up()
    # The accounts' keys first: issuing one moves the log, which the checks below watch.
    assert exchange.keys is not None
    await exchange.keys.prepare(
        spec.get("user_id") or spec.get("order", {}).get("user_id") or "" for spec in specs
    )
    before = await log_head(exchange)
    outcome = await call(exchange, rpc, specs)
    after_call = await log_head(exchange)
    # An issued or revoked key is written to the log too (not a command request).
    keys_changed = rpc.service == ADMIN_SERVICE and outcome.status.code == grpc.StatusCode.OK
    if outcome.accepted_commands == 0 and not keys_changed:
        assert after_call == before, (
            f"{rpc!r} answered {outcome.status.code.name} and accepted no command, yet the"
            f" log moved from {before} to {after_call}"
        )
        if not follow_up_always:
            return outcome
    try:
        upto = await follow_up(exchange)
    except (grpc.aio.AioRpcError, TimeoutError, AssertionError) as error:
        HEALTH.stuck_since = f"after {rpc!r} {specs!r}: {error!r}"[:2000]
    assert_keeping_up()
    appended = await request_events_after(exchange, before, upto) - 1  # the follow-up's
    assert appended == outcome.accepted_commands, (
        f"{rpc!r}: {outcome.accepted_commands} command(s) accepted, {appended} request"
        " event(s) appended"
    )
    return outcome


# -- the service --------------------------------------------------------------------------


@dataclass(repr=False)
class ServiceUnderTest(Exchange):
    """The module's exchange, shown in one line in Hypothesis' reports."""

    def __repr__(self) -> str:
        return f"<exchange on {self.target}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@pytest.fixture(scope="module")
async def adversarial_exchange(service_urls: Any) -> AsyncIterator[Exchange]:
    name, database_url = await create_database(service_urls.database_url)
    redis_url = redis_url_with_db(service_urls.redis_url, ADVERSARIAL_TEST_REDIS_DB)
    redis_client = aioredis.from_url(redis_url)
    await redis_client.flushdb()
    await redis_client.aclose()
    try:
        settings = service_settings(database_url, redis_url)
        async with running_exchange(settings, ServiceUnderTest) as exchange:
            await seed_orders(exchange)
            yield exchange
    finally:
        await drop_database(service_urls.database_url, name)


async def seed_orders(exchange: Exchange) -> None:
    """An open order, a filled pair and a trade, under ids the strategies know."""
    for (user, client_order_id), side, price in (
        (SEED_OPEN, types.SIDE_BUY, "10.00"),
        (SEED_FILLED_SELL, types.SIDE_SELL, "20.00"),
        (SEED_FILLED_BUY, types.SIDE_BUY, "20.00"),
    ):
        placed = await exchange.commands.PlaceOrder(
            order_command_service_pb2.PlaceOrderRequest(
                user_id=user,
                instrument="BTC-USD",
                side=side,
                type=types.ORDER_TYPE_LIMIT,
                price=price,
                quantity="1",
                client_order_id=client_order_id,
            ),
            timeout=UNARY_TIMEOUT_S,
        )
        await settle(exchange, LogPosition.parse(placed.position))
    await follow_up(exchange)


# -- the properties ---------------------------------------------------------------------------


def test_the_suite_drives_every_rpc_of_every_service() -> None:
    services = {rpc.service for rpc in RPCS}
    assert services == {
        "exchange.v1.AccountService",
        "exchange.v1.AdminService",
        "exchange.v1.OrderCommandService",
        "exchange.v1.OrderQueryService",
        "exchange.v1.MarketDataService",
        "exchange.v1.DiagnosticsService",
    }
    for module in _service_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert Rpc(service.full_name, method) in RPCS


def _specs_for(rpc: Rpc) -> st.SearchStrategy[list[dict[str, Any]]]:
    if rpc.method.client_streaming:
        return stream_specs(rpc.request_type)
    return request_specs(rpc.request_type).map(lambda spec: [spec])


@pytest.mark.parametrize("rpc", RPCS, ids=repr)
@settings(SETTINGS, max_examples=10)
@given(data=st.data())
async def test_every_rpc_answers_hostile_requests_with_a_documented_status(
    adversarial_exchange: Exchange, rpc: Rpc, data: st.DataObject
) -> None:
    specs = data.draw(_specs_for(rpc), label="requests")
    outcome = await run_example(adversarial_exchange, rpc, specs)
    check_outcome(rpc, specs, outcome)


PLACE_ORDER = next(rpc for rpc in RPCS if rpc.name == "PlaceOrder")
STREAM_PLACE_ORDERS = next(rpc for rpc in RPCS if rpc.name == "StreamPlaceOrders")


def _check_place_expectation(
    spec: Mapping[str, Any], poisoned: str | None, answer: Answer, entry: str
) -> None:
    """A clean order is accepted; one with a field the door must refuse is refused with
    INVALID_ARGUMENT naming that field."""
    expected = place_expectation(spec, poisoned)
    tally(f"{entry} {poisoned or 'clean'}: {expected} -> {answer.code.name}")
    if expected == "refused":
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, (
            f"{entry}: {poisoned}={spec[poisoned]!r} answered {answer.code.name}"
        )
        named = [name for name, _, _ in answer.violations]
        assert poisoned in named, f"{entry}: {poisoned} poisoned, violations name {named}"
    elif expected == "accepted":
        reused = bool(spec.get("client_order_id"))
        assert answer.code == grpc.StatusCode.OK or (
            reused and answer.code == grpc.StatusCode.ALREADY_EXISTS
        ), f"{entry}: a valid order answered {answer.code.name}: {answer.violations}"


@pytest.mark.parametrize("entry", ["PlaceOrder", "StreamPlaceOrders"])
@settings(SETTINGS, max_examples=30)
@given(poisoned_spec=poisoned_place_specs())
async def test_a_mostly_valid_order_with_one_poisoned_field(
    adversarial_exchange: Exchange, entry: str, poisoned_spec: tuple[dict[str, Any], str | None]
) -> None:
    spec, poisoned = poisoned_spec
    if entry == "PlaceOrder":
        outcome = await run_example(adversarial_exchange, PLACE_ORDER, [spec])
        check_outcome(PLACE_ORDER, [spec], outcome)
        answer = outcome.status
    else:
        specs = [{"request_id": 7, "order": spec}]
        outcome = await run_example(adversarial_exchange, STREAM_PLACE_ORDERS, specs)
        check_outcome(STREAM_PLACE_ORDERS, specs, outcome)
        answer = outcome.stream_answers[7][0]
    _check_place_expectation(spec, poisoned, answer, entry)


# -- the sweep: every catalogued value in every field, one at a time -------------------------

# A valid request of each kind, around the sweep's own open order; the sweep spoils one
# field at a time. A request type without a base here is swept from an empty request.
SWEEPER = "sweeper"


def sweep_bases(order_id: str) -> dict[str, dict[str, Any]]:
    return {
        "PlaceOrderRequest": {
            "user_id": SWEEPER,
            "instrument": "BTC-USD",
            "side": types.SIDE_BUY,
            "type": types.ORDER_TYPE_LIMIT,
            "price": "1.00",
            "quantity": "1",
        },
        "CancelOrderRequest": {"user_id": SWEEPER, "order_id": order_id},
        "AmendOrderRequest": {"user_id": SWEEPER, "order_id": order_id, "quantity": "2"},
        "CancelAllOrdersRequest": {"user_id": "sweeper-kill-switch", "instrument": "BTC-USD"},
        "GetOrderRequest": {"order_id": order_id, "user_id": SWEEPER},
        "ListOrdersRequest": {
            "user_id": SWEEPER,
            "instrument": "BTC-USD",
            "status": types.ORDER_STATUS_OPEN,
            "page_size": 10,
        },
        "GetOrderBookRequest": {"instrument": "BTC-USD", "depth": 5},
        "ListTradesRequest": {"instrument": "BTC-USD", "page_size": 10},
        "StreamTradesRequest": {"instrument": "BTC-USD"},
        "StreamOrderBookRequest": {"instrument": "BTC-USD", "depth": 5},
        "StreamOrderUpdatesRequest": {"user_id": SWEEPER, "instrument": "BTC-USD"},
        "StreamPingRequest": {"request_id": 1},
        "StreamPlaceOrdersRequest": {"request_id": 1},
    }


# PlaceOrder's side and type are required: their 0 is refused too.
PLACE_CATALOGUES: Mapping[str, tuple[Any, ...]] = {
    "side": (0, *UNKNOWN_ENUM_NUMBERS),
    "type": (0, *UNKNOWN_ENUM_NUMBERS),
}


@dataclass(frozen=True)
class SweepCase:
    field: str
    value: Any
    specs: list[dict[str, Any]]
    place_order: dict[str, Any] | None = None  # the order, when a place is swept

    def __str__(self) -> str:
        return f"{self.field}={self.value!r}"


def _place_cases(
    base: dict[str, Any], prefix: str = ""
) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    descriptor = order_command_service_pb2.PlaceOrderRequest.DESCRIPTOR
    for each in descriptor.fields:
        catalogue = PLACE_CATALOGUES.get(each.name, field_values(each).catalogue)
        for value in catalogue:
            order = shaped_for(dict(base), each.name)
            order[each.name] = value
            yield prefix + each.name, value, order


def sweep_cases(rpc: Rpc, order_id: str) -> list[SweepCase]:
    bases = sweep_bases(order_id)
    base = bases.get(rpc.request_type.name, {})
    cases: list[SweepCase] = []
    if rpc.request_type.name == "PlaceOrderRequest":
        for name, value, order in _place_cases(base):
            cases.append(SweepCase(name, value, [order], order))
        return cases
    for each in rpc.request_type.fields:
        if each.message_type is not None and each.message_type.name == "PlaceOrderRequest":
            for name, value, order in _place_cases(bases["PlaceOrderRequest"], "order."):
                cases.append(SweepCase(name, value, [{**base, each.name: order}], order))
            continue
        for value in field_values(each).catalogue:
            cases.append(SweepCase(each.name, value, [{**base, each.name: value}]))
    if not cases:
        cases.append(SweepCase("(no fields)", None, [base]))
    return cases


async def _sweep_order(exchange: Exchange, rpc: Rpc) -> str:
    """An open order of the sweeper's, for the calls that name one."""
    placed = await exchange.commands.PlaceOrder(
        order_command_service_pb2.PlaceOrderRequest(
            user_id=SWEEPER,
            instrument="BTC-USD",
            side=types.SIDE_BUY,
            type=types.ORDER_TYPE_LIMIT,
            price="1.00",
            quantity="1",
            client_order_id=f"sweep-{rpc.name}",
        ),
        timeout=UNARY_TIMEOUT_S,
    )
    await settle(exchange, LogPosition.parse(placed.position))
    return placed.order.order_id


@pytest.mark.parametrize("rpc", RPCS, ids=repr)
async def test_every_catalogued_hostile_value_in_every_field_of_every_rpc(
    adversarial_exchange: Exchange, rpc: Rpc
) -> None:
    """The catalogues, one value at a time in one field of an otherwise valid request, so
    that each known-hostile value reaches each field's own checks on every run; every
    failure is listed, not only the first."""
    order_id = await _sweep_order(adversarial_exchange, rpc)
    failures: list[str] = []
    for case in sweep_cases(rpc, order_id):
        try:
            outcome = await run_example(
                adversarial_exchange, rpc, case.specs, follow_up_always=False
            )
            check_outcome(rpc, case.specs, outcome)
            if case.place_order is not None:
                answer = outcome.status
                if rpc.method.client_streaming:
                    answer = next(iter(outcome.stream_answers.values()))[0]
                _check_place_expectation(
                    case.place_order, case.field.removeprefix("order."), answer, repr(rpc)
                )
        except AssertionError as failure:
            failures.append(f"{case}: {str(failure).splitlines()[0]}")
            assert_keeping_up()
    await follow_up(adversarial_exchange)
    assert not failures, f"{len(failures)} hostile value(s) mishandled:\n" + "\n".join(failures)
