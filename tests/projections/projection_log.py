"""Test helper: a log written the way the service writes it, by a real MatchingEngine.

`ScriptedLog` takes replayer-format command dicts. For each one it appends the request
(`OrderPlaceRequested` / `OrderCancelRequested` / `OrderAmendRequested` on `order-<id>`,
or `ClockTicked` on `clock`), runs the command through a real engine, and appends the
engine's results in one atomic append with the request's id as `causation_id`: orders'
events on `order-<id>`, trades on `trades-<instrument>`, grouped by stream (an atomic
append names each stream once, so the log does not keep the engine's emission order
across streams). Without an event store (`store=None`) it keeps the recorded events in memory, for
the pure reducers.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from domain.codec import command_from_dict
from domain.instruments import Instrument
from projections.views import BookSnapshot, BookUpdate, PriceLevel
from server.engine_inputs import logged_results, new_engine
from server.eventstore.port import EventStore, LogPosition, NewEvent, StreamAppend
from server.log_contract import layout as streams
from server.log_contract.results import ResultEncoder

INSTRUMENTS = {
    "BTC-USD": Instrument("BTC-USD", Decimal("0.01"), Decimal("0.0001")),
    "ETH-USD": Instrument("ETH-USD", Decimal("0.01"), Decimal("0.001")),
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Replayer ops written as results only (no request record).
VENUE_OPS = frozenset({"accounts", "asset", "deposit", "withdraw", "instrument_status"})
_REQUEST_TYPES = {
    "place": streams.ORDER_PLACE_REQUESTED,
    "cancel": streams.ORDER_CANCEL_REQUESTED,
    "amend": streams.ORDER_AMEND_REQUESTED,
}


@dataclass(frozen=True)
class MemoryEvent:
    """A recorded event for the pure reducers (the fields `RecordedEvent` has)."""

    stream: str
    type: str
    data: dict[str, Any]
    position: LogPosition
    recorded_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


class ScriptedLog:
    def __init__(
        self,
        store: EventStore | None,
        instruments: Mapping[str, Instrument] = INSTRUMENTS,
        prefix: str = "",
        inputs_per_append: int = 1,
    ) -> None:
        self.store = store
        # >1: requests and results of that many inputs are appended together (requests in
        # one transaction, then results in the next), as a busy service would batch them.
        self.inputs_per_append = inputs_per_append
        self._pending_requests: dict[str, list[NewEvent]] = {}
        self._pending_results: dict[str, list[NewEvent]] = {}
        self._pending_inputs = 0
        self.instruments = dict(instruments)
        self.engine = new_engine(self.instruments)
        # The engine's own instruments and assets (live views): with accounts on, amounts
        # are written with each asset's precision, as the engine runner writes them.
        self._encoder = ResultEncoder(self.engine.instruments, self.engine.assets)
        self.prefix = prefix  # makes order ids unique per test on a shared log
        self.memory: list[MemoryEvent] = []
        self.last_position: LogPosition | None = None
        self.now = T0
        self._tx = 0
        self._instrument_of: dict[str, str] = {}

    def order_id(self, name: str) -> str:
        return self.prefix + name

    async def run(self, commands: Iterable[Mapping[str, Any]]) -> None:
        for command in commands:
            await self.submit(command)
        await self.flush()

    async def flush(self) -> None:
        """Append what is buffered: the requests, then the results."""
        for pending in (self._pending_requests, self._pending_results):
            if pending:
                await self._append([StreamAppend(s, events) for s, events in pending.items()])
                pending.clear()
        self._pending_inputs = 0

    async def submit(self, command: Mapping[str, Any]) -> LogPosition:
        """Append the request, run it, append the results; the results' last position."""
        data = dict(command)
        op = data["op"]
        self.now += timedelta(milliseconds=1)
        if op in VENUE_OPS:
            # Accounts, transfers and venue controls: only their results are written here
            # (what the read side folds); the service's requests are the write side's.
            money_command = command_from_dict(data, self.instruments, assets=self.engine.assets)
            return await self._record_results(money_command, {})
        if op == "time":
            self.now = streams.parse_time(data["now"])
            request_stream, request_type = streams.CLOCK_STREAM, streams.CLOCK_TICKED
            request_data: dict[str, Any] = {"now": data["now"]}
        elif op == "cancel_all":
            request_stream = streams.cancel_all_stream(data["user_id"])
            request_type = streams.CANCEL_ALL_REQUESTED
            request_data = {**data, "requested_at": streams.format_time(self.now)}
        else:
            data["order_id"] = self.order_id(data["order_id"])
            if op == "place":
                self._instrument_of[data["order_id"]] = data["instrument"]
            elif op == "amend" and data["order_id"] in self._instrument_of:
                data.setdefault("instrument", self._instrument_of[data["order_id"]])
            request_stream = streams.order_stream(data["order_id"])
            request_type = _REQUEST_TYPES[op]
            request_data = {**data, "requested_at": streams.format_time(self.now)}
            if op == "place":
                request_data["user_id"] = data["user_id"]
                request_data.setdefault("client_order_id", "")
        request = NewEvent(request_type, request_data)
        self._pending_requests.setdefault(request_stream, []).append(request)
        if self.inputs_per_append == 1:
            await self.flush()
        engine_command = command_from_dict(
            data, self.instruments, instrument_of_order=self.engine.instrument_of
        )
        return await self._record_results(
            engine_command, {streams.CAUSATION_ID: str(request.event_id)}
        )

    async def _record_results(self, engine_command: Any, metadata: dict[str, str]) -> LogPosition:
        """Run a command and buffer (or append) its results."""
        # One atomic append names each stream once: events grouped by stream (in order of
        # first appearance), emission order kept within a stream, as the runner writes them
        # (its own routing and encoding).
        by_stream = self._pending_results
        results = logged_results(self.engine.handle(engine_command), self._encoder)
        for stream, event_type, event_data, _ in results:
            by_stream.setdefault(stream, []).append(NewEvent(event_type, event_data, metadata))
        self._pending_inputs += 1
        if self._pending_inputs >= self.inputs_per_append:
            await self.flush()
        assert self.last_position is not None or self.inputs_per_append > 1
        return self.last_position  # type: ignore[return-value]

    async def _append(self, appends: list[StreamAppend]) -> None:
        if self.store is not None:
            results = await self.store.append_multi(appends)
            self.last_position = max(p for r in results for p in r.positions)
            return
        self._tx += 1
        seq = 0
        for append in appends:
            for event in append.events:
                seq += 1
                position = LogPosition(self._tx, seq)
                self.memory.append(
                    MemoryEvent(
                        append.stream,
                        event.type,
                        dict(event.data),
                        position,
                        self.now,
                        dict(event.metadata),
                    )
                )
                self.last_position = position

    def engine_levels(self, instrument: str) -> tuple[tuple[PriceLevel, ...], ...]:
        """The engine's own aggregated book, as the views express it."""
        spec = self.instruments[instrument]
        bids, asks = self.engine.book_levels(instrument, depth=1_000_000)
        return tuple(
            tuple(
                PriceLevel(spec.ticks_to_price(p), spec.lots_to_quantity(q), n) for p, q, n in side
            )
            for side in (bids, asks)
        )


def random_commands(seed: int, count: int, instrument: str = "BTC-USD") -> list[dict[str, Any]]:
    """A seeded mix: limit orders near the mid (some IOC/FOK/post-only/GTD), market orders,
    stops, cancels, users' cancel-alls, amends and clock ticks."""
    rng = random.Random(seed)
    commands: list[dict[str, Any]] = []
    placed: list[str] = []
    clock = T0
    for n in range(count):
        roll = rng.random()
        side = rng.choice(["BUY", "SELL"])
        user = f"u{rng.randint(1, 6)}"
        quantity = f"{rng.randint(1, 40) / 10:.1f}"
        price = f"{100 + rng.randint(-10, 10) * 0.5 + (1 if side == 'SELL' else -1):.2f}"
        order_id = f"r{n}"
        if roll < 0.55:
            command: dict[str, Any] = {
                "op": "place",
                "order_id": order_id,
                "user_id": user,
                "instrument": instrument,
                "side": side,
                "type": "LIMIT",
                "price": price,
                "quantity": quantity,
                "time_in_force": rng.choice(["GTC"] * 6 + ["IOC", "FOK", "GTD"]),
            }
            if command["time_in_force"] == "GTD":
                expiry = clock + timedelta(seconds=rng.randint(1, 20))
                command["expire_time"] = streams.format_time(expiry)
            if rng.random() < 0.1:
                command["post_only"] = True
            if rng.random() < 0.2:
                command["stp"] = rng.choice(["CANCEL_OLDEST", "CANCEL_BOTH", "NONE"])
            commands.append(command)
            placed.append(order_id)
        elif roll < 0.63:
            command = {
                "op": "place",
                "order_id": order_id,
                "user_id": user,
                "instrument": instrument,
                "side": side,
                "type": "MARKET",
                "quantity": quantity,
                "time_in_force": "IOC",
            }
            if rng.random() < 0.5:
                command["max_slippage_bps"] = rng.randint(1, 200)
            commands.append(command)
        elif roll < 0.68:
            stop = f"{100 + rng.randint(-12, 12) * 0.5:.2f}"
            command = {
                "op": "place",
                "order_id": order_id,
                "user_id": user,
                "instrument": instrument,
                "side": side,
                "type": rng.choice(["STOP_LIMIT", "STOP_MARKET"]),
                "stop_price": stop,
                "quantity": quantity,
                "time_in_force": "GTC",
            }
            if command["type"] == "STOP_LIMIT":
                command["price"] = price
            commands.append(command)
            placed.append(order_id)
        elif roll < 0.83 and placed:
            commands.append({"op": "cancel", "order_id": rng.choice(placed)})
        elif roll < 0.85:
            cancel_all = {"op": "cancel_all", "user_id": user}
            if rng.random() < 0.5:
                cancel_all["instrument"] = instrument
            commands.append(cancel_all)
        elif roll < 0.95 and placed:
            amend: dict[str, Any] = {"op": "amend", "order_id": rng.choice(placed)}
            if rng.random() < 0.7:
                amend["quantity"] = f"{rng.randint(1, 60) / 10:.1f}"
            if rng.random() < 0.5 or "quantity" not in amend:
                amend["price"] = price
            commands.append(amend)
        else:
            clock += timedelta(seconds=rng.randint(1, 8))
            commands.append({"op": "time", "now": streams.format_time(clock)})
    return commands


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}-"


BookLevels = tuple[tuple[PriceLevel, ...], tuple[PriceLevel, ...]]


def fold_book(
    updates: Iterable[Any], snapshot: BookSnapshot | None = None
) -> tuple[BookLevels, int | None]:
    """The book a subscriber holds (bids best first, asks best first) and its sequence:
    `snapshot` (or an empty book) with the updates applied; from a snapshot the updates'
    sequences must follow it without gap or repeat."""
    sides: dict[str, dict[Decimal, PriceLevel]] = {
        "BUY": {} if snapshot is None else {level.price: level for level in snapshot.bids},
        "SELL": {} if snapshot is None else {level.price: level for level in snapshot.asks},
    }
    sequence = None if snapshot is None else snapshot.sequence
    for update in updates:
        assert isinstance(update, BookUpdate)
        if sequence is not None:
            assert update.sequence == sequence + 1  # no gap, no repeat
        sequence = update.sequence
        for change in update.changes:
            if change.order_count == 0:
                sides[change.side].pop(change.price, None)
            else:
                sides[change.side][change.price] = PriceLevel(
                    change.price, change.quantity, change.order_count
                )
    bids = tuple(sorted(sides["BUY"].values(), key=lambda level: -level.price))
    asks = tuple(sorted(sides["SELL"].values(), key=lambda level: level.price))
    return (bids, asks), sequence
