"""From recorded input events to engine commands, and from engine events to log appends.

Pure and deterministic, so the live engine runner, its restart (snapshot + tail) and any
full replay of the log (tests, audits) turn the same inputs into the same commands:

- ``ClockTicked {"now"}`` advances the engine clock (the engine ignores time going back).
- each ``*Requested`` event first advances the clock to its ``requested_at``, then becomes
  its command: the engine's timestamps are the log's and replay to the microsecond. A
  user's ``CancelAllRequested`` (stream ``cancel-all-<user_id>``) becomes CancelAllOrders.
- ``DepositRequested`` / ``WithdrawalRequested`` (``transfer-<id>``) become Deposit /
  Withdraw (amounts in the asset's units), ``InstrumentStatusRequested``
  (``instrument-<symbol>``) a SetInstrumentStatus.
- engine results (``server.log_contract.results`` turns the engine's events into the log's
  records) go to the stream ``route`` names, in emission order.

With accounts on (``assets`` given), a new engine is set up from the configuration before
any input, deterministically: AddAsset for each configured asset (in code order), then
EnableAccounts, then the instruments (``prepare_engine``). The runner writes the records of
that setup (``AssetAdded``, ``AccountsEnabled``) to the ``venue`` stream once: the log says
which mode it was written in (``server.accounts_mode``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from domain import events
from domain.assets import amount_to_units, check_asset, precision_of
from domain.commands import (
    AddAsset,
    AddInstrument,
    AdvanceTime,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Deposit,
    EnableAccounts,
    PlaceOrder,
    SetInstrumentStatus,
    Withdraw,
)
from domain.engine import MatchingEngine
from domain.errors import InvalidField
from domain.input_rules import MAX_STEPS, check_identifier, check_time_ns, shown
from domain.instruments import Instrument
from server.log_contract.layout import (
    ENGINE_INPUT_EVENT_TYPES,
    VENUE_STREAM,
    book_stream,
    instrument_stream,
    order_stream,
    trades_stream,
    transfer_stream,
)
from server.log_contract.mapper import decode_data
from server.log_contract.records import (
    AmendRejected,
    CancelAllRequested,
    CancelRejected,
    ClockTicked,
    DepositRequested,
    EngineResult,
    InstrumentRejected,
    InstrumentStatusRequested,
    OrderAmendRequested,
    OrderCancelRequested,
    OrderPlaceRequested,
    OrderRejected,
    Request,
    TransferRejected,
    WithdrawalRequested,
)
from server.log_contract.results import ResultEncoder

# The engine's events the log does not hold (see `route`).
UNRECORDED_EVENT_TYPES = frozenset({events.ClockAdvanced.__name__})


def new_engine(
    instruments: Mapping[str, Instrument],
    closed_order_memory: int | None = None,
    assets: Mapping[str, int] | None = None,
) -> MatchingEngine:
    """An empty engine with every configured instrument, remembering at most
    `closed_order_memory` closed order ids (None: all). The service's engine emits book
    level deltas: the book views and the live book stream apply them. With `assets`
    (asset -> precision) accounts are on: see `prepare_engine` (its setup events are
    dropped here; the runner writes them once)."""
    if assets is not None:
        engine = MatchingEngine(closed_order_memory=closed_order_memory, book_deltas=True)
        prepare_engine(engine, instruments, assets)
        return engine
    return MatchingEngine(
        (instruments[symbol] for symbol in sorted(instruments)),
        closed_order_memory=closed_order_memory,
        book_deltas=True,
    )


def prepare_engine(
    engine: MatchingEngine,
    instruments: Mapping[str, Instrument],
    assets: Mapping[str, int] | None,
) -> list[events.Event]:
    """Bring a new or restored engine to the configuration: with `assets` (accounts on),
    the assets it lacks (in code order), then accounts on if they are not, then the
    instruments it lacks (in symbol order). The events of the setup the log holds
    (``AssetAdded``, ``AccountsEnabled``, and refusals), in order."""
    setup: list[events.Event] = []
    if assets is not None:
        known = engine.assets
        for asset in sorted(assets):
            if asset not in known:
                setup.extend(engine.handle(AddAsset(asset, assets[asset])))
        if not engine.accounts_enabled:
            setup.extend(engine.handle(EnableAccounts()))
    add_missing_instruments(engine, instruments)
    return [event for event in setup if route(event) is not None]


def add_missing_instruments(engine: MatchingEngine, instruments: Mapping[str, Instrument]) -> None:
    """Add configured instruments a (restored) engine does not know yet, in symbol order."""
    known = set(engine.instruments)
    for symbol in sorted(instruments):
        if symbol not in known:
            engine.handle(AddInstrument(instruments[symbol]))


def route(event: events.Event) -> str | None:
    """The stream an engine event's record is written to; None for ``ClockAdvanced``.

    The engine's clock moves only on inputs already in the log (``ClockTicked`` and the
    requests' ``requested_at``), so its ``ClockAdvanced`` events would repeat the log.
    """
    if isinstance(event, events.ClockAdvanced):
        return None
    if isinstance(event, events.TradeExecuted | events.TradeSettled):
        return trades_stream(event.instrument)
    if isinstance(event, events.BookLevelsChanged):
        return book_stream(event.instrument)
    if isinstance(event, events.FundsDeposited | events.FundsWithdrawn | events.TransferRejected):
        return transfer_stream(event.transfer_id)
    if isinstance(event, events.InstrumentStatusChanged | events.InstrumentRejected):
        return instrument_stream(event.instrument)
    if isinstance(
        event,
        events.AssetAdded | events.AssetRejected | events.AccountsEnabled | events.AccountsRejected,
    ):
        return VENUE_STREAM
    if isinstance(event, events.InstrumentAdded):
        raise ValueError(f"engine event with no stream: {event!r}")
    return order_stream(event.order_id)


Encoded = tuple[str, str, dict[str, Any], dict[str, str]]


def logged_results(results: Iterable[events.Event], encoder: ResultEncoder) -> Iterator[Encoded]:
    """(stream, event type, data, metadata) of each engine result the log holds, in the
    engine's order: how the engine runner writes them, and so anything that writes a log
    the way it does (the tests' scripted logs, the projections bench)."""
    for result in results:
        stream = route(result)
        if stream is None:  # not held by the log (ClockAdvanced)
            continue
        encoded = encoder.encode(result)
        assert encoded is not None
        yield (stream, *encoded)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _nanos(field: str, moment: datetime) -> int:
    """An aware time as the engine's nanoseconds (the log holds microseconds)."""
    return check_time_ns(field, (moment - _EPOCH) // _ONE_MICROSECOND * 1000)


def _slippage(bps: int | None) -> int | None:
    """A market order's slippage bound, when within what a snapshot's integers hold."""
    if bps is not None and abs(bps) > MAX_STEPS:
        raise InvalidField(
            "max_slippage_bps", "TOO_LARGE", f"max_slippage_bps is beyond {MAX_STEPS}"
        )
    return bps


class InputTranslator:
    """Turns input events into commands through the log's contract (stateless: time that
    does not move the engine's clock forward is dropped here, as the engine would ignore
    it anyway). An input the domain's rules refuse raises InvalidField (the runner answers
    it with a rejection); one the contract cannot read raises UnreadableRecord."""

    def __init__(
        self, instruments: Mapping[str, Instrument], assets: Mapping[str, int] | None = None
    ) -> None:
        self._instruments = instruments
        # Asset precisions for transfer amounts (an asset the configuration does not list
        # has the domain's default, as the engine would give it).
        self._assets: Mapping[str, int] = assets or {}

    def commands_for(
        self, event_type: str, data: Mapping[str, Any], engine_now: int = -1
    ) -> list[Any]:
        """The commands one input event stands for (possibly none); `engine_now` is the
        engine's clock (ns), so a request at the same or an earlier instant adds no tick."""
        record = decode_input(event_type, data)
        return [] if record is None else self.commands_of(record, engine_now)

    def commands_of(self, record: ClockTicked | Request, engine_now: int = -1) -> list[Any]:
        """The commands of one decoded input (see `commands_for`)."""
        if isinstance(record, ClockTicked):
            now = _nanos("now", record.now)
            return [AdvanceTime(now)] if now > engine_now else []
        commands: list[Any] = []
        now = _nanos("requested_at", record.requested_at)
        if now > engine_now:
            commands.append(AdvanceTime(now))
        commands.append(self.command_of(record))
        return commands

    def command_of(self, request: Request) -> Any:
        """The command of one request, without its clock tick. The command side validates
        what it writes with this, so the door refuses exactly what the runner would."""
        if isinstance(request, OrderPlaceRequested):
            instrument = self._instrument(request.instrument)
            return PlaceOrder(
                order_id=check_identifier("order_id", request.order_id),
                user_id=check_identifier("user_id", request.user_id),
                instrument=instrument.symbol,
                side=request.side,
                order_type=request.type,
                quantity=instrument.quantity_to_lots(request.quantity, "quantity"),
                price=None
                if request.price is None
                else instrument.price_to_ticks(request.price, "price"),
                time_in_force=request.time_in_force,
                post_only=request.post_only,
                expire_time=None
                if request.expire_time is None
                else _nanos("expire_time", request.expire_time),
                max_slippage_bps=_slippage(request.max_slippage_bps),
                stp=request.stp,
                stop_price=None
                if request.stop_price is None
                else instrument.price_to_ticks(request.stop_price, "stop_price"),
            )
        if isinstance(request, OrderCancelRequested):
            return CancelOrder(check_identifier("order_id", request.order_id))
        if isinstance(request, OrderAmendRequested):
            instrument = self._instrument(request.instrument)
            return AmendOrder(
                check_identifier("order_id", request.order_id),
                quantity=None
                if request.quantity is None
                else instrument.quantity_to_lots(request.quantity, "quantity"),
                price=None
                if request.price is None
                else instrument.price_to_ticks(request.price, "price"),
            )
        if isinstance(request, DepositRequested | WithdrawalRequested):
            asset = check_asset("asset", request.asset)
            kind = Deposit if isinstance(request, DepositRequested) else Withdraw
            return kind(
                check_identifier("transfer_id", request.transfer_id),
                check_identifier("user_id", request.user_id),
                asset,
                amount_to_units(request.amount, precision_of(self._assets, asset)),
            )
        if isinstance(request, InstrumentStatusRequested):
            return SetInstrumentStatus(self._instrument(request.symbol).symbol, request.status)
        assert isinstance(request, CancelAllRequested)
        return CancelAllOrders(
            check_identifier("user_id", request.user_id),
            None if request.instrument is None else self._instrument(request.instrument).symbol,
        )

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            raise InvalidField(
                "instrument", "UNKNOWN_INSTRUMENT", f"unknown instrument {shown(symbol)}"
            )
        return instrument


def decode_input(event_type: str, data: Mapping[str, Any]) -> ClockTicked | Request | None:
    """The record of an input event; None for an event that is not an engine input.

    A record the contract cannot read is a broken log, not a business refusal: the
    UnreadableRecord it raises stops the runner at it (it reports and waits for a repair).
    """
    if event_type not in ENGINE_INPUT_EVENT_TYPES:
        return None
    record = decode_data(event_type, data)
    assert isinstance(record, ClockTicked | Request)
    return record


Refusal = OrderRejected | CancelRejected | AmendRejected | TransferRejected | InstrumentRejected


def refused_input(request: ClockTicked | Request, error: InvalidField) -> list[tuple[str, Refusal]]:
    """The results of an input the engine cannot even read (e.g. its instrument has been
    removed from the configuration since it was written): a rejection for the order (or
    transfer, or venue control), so it never stays pending, instead of an input that would
    stop the runner forever. Each with the stream it is written to."""
    if isinstance(request, OrderPlaceRequested):
        return [
            (
                order_stream(request.order_id),
                OrderRejected(
                    instrument=request.instrument,
                    order_id=request.order_id,
                    user_id=request.user_id,
                    reason=error.reason,
                    rejected_at=request.requested_at,
                ),
            )
        ]
    if isinstance(request, OrderCancelRequested):
        return [
            (
                order_stream(request.order_id),
                CancelRejected(
                    instrument=None,
                    order_id=request.order_id,
                    reason=error.reason,
                    rejected_at=request.requested_at,
                ),
            )
        ]
    if isinstance(request, OrderAmendRequested):
        return [
            (
                order_stream(request.order_id),
                AmendRejected(
                    instrument=request.instrument,
                    order_id=request.order_id,
                    reason=error.reason,
                    rejected_at=request.requested_at,
                ),
            )
        ]
    if isinstance(request, DepositRequested | WithdrawalRequested):
        return [
            (
                transfer_stream(request.transfer_id),
                TransferRejected(
                    transfer_id=request.transfer_id,
                    user_id=request.user_id,
                    asset=request.asset,
                    amount=request.amount,
                    reason=error.reason,
                    rejected_at=request.requested_at,
                ),
            )
        ]
    if isinstance(request, InstrumentStatusRequested):
        return [
            (
                instrument_stream(request.symbol),
                InstrumentRejected(instrument=request.symbol, reason=error.reason),
            )
        ]
    # An unreadable clock tick moves no clock; an unreadable cancel-all (its instrument
    # since removed from the configuration) has no order of that instrument to cancel.
    return []


def replay_inputs(
    inputs: Iterable[tuple[str, Mapping[str, Any]]],
    instruments: Mapping[str, Instrument],
    closed_order_memory: int | None = None,
    assets: Mapping[str, int] | None = None,
    engine: MatchingEngine | None = None,
) -> list[tuple[str, EngineResult]]:
    """Run (event_type, data) inputs through a fresh engine (accounts on with `assets`,
    or through `engine`, a fresh one made by the caller to look at afterwards): (stream,
    record) of every result it emits that the log holds, in order (the setup's records
    left out).

    The reference a log written by the engine runner must equal (tests, audits).
    """
    if engine is None:
        engine = new_engine(instruments, closed_order_memory, assets)
    translator = InputTranslator(instruments, assets)
    results = ResultEncoder(instruments, engine.assets)
    emitted: list[tuple[str, EngineResult]] = []
    for event_type, data in inputs:
        request = decode_input(event_type, data)
        if request is None:
            continue
        try:
            commands = translator.commands_of(request, engine.now)
        except InvalidField as error:
            emitted.extend(refused_input(request, error))
            continue
        for command in commands:
            for event in engine.handle(command):
                stream = route(event)
                record = results.record(event)
                if stream is not None and record is not None:
                    emitted.append((stream, record))
    return emitted
