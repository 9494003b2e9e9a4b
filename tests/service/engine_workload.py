"""A seeded workload of order requests, and the log-vs-replay comparison of the runner tests."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.instruments import Instrument
from server.clock import clock_tick_event
from server.commands import CommandHandlers, PlaceOrderInput
from server.engine_inputs import replay_inputs
from server.engine_runner import INPUT_FILTER, last_event
from server.errors import Refused
from server.eventstore.port import ANY, EventStore, LogPosition, RecordedEvent
from server.log_contract import layout as streams
from server.log_contract.layout import CLOCK_STREAM, REQUEST_EVENT_TYPES, engine_stream
from server.log_contract.mapper import encode

POLL_S = 0.02
BOUND_S = 120.0


class Workload:
    """Places, cancels, amends, cancel-alls and clock ticks from a seed (prices near a mid,
    some GTD)."""

    def __init__(self, handlers: CommandHandlers, store: EventStore, seed: int) -> None:
        self._handlers = handlers
        self._store = store
        self._random = random.Random(seed)
        self._placed: list[tuple[str, str]] = []  # (user_id, order_id)
        self._clock = datetime.now(UTC)
        self.last_position: LogPosition | None = None

    def _note(self, position: LogPosition) -> None:
        if self.last_position is None or self.last_position < position:
            self.last_position = position

    async def step(self) -> None:
        draw = self._random.random()
        user = f"u{self._random.randint(1, 6)}"
        try:
            if draw < 0.6 or not self._placed:
                await self._place(user)
            elif draw < 0.75:
                owner, order_id = self._random.choice(self._placed)
                outcome = await self._handlers.cancel_order(owner, order_id)
                self._note(outcome.position)
            elif draw < 0.9:
                owner, order_id = self._random.choice(self._placed)
                quantity = f"{self._random.randint(1, 30) / 10:.1f}"
                outcome = await self._handlers.amend_order(owner, order_id, None, quantity)
                self._note(outcome.position)
            elif draw < 0.92:
                instrument = "BTC-USD" if self._random.random() < 0.5 else None
                written = await self._handlers.cancel_all_orders(user, instrument)
                self._note(written.position)
            else:
                self._clock += timedelta(seconds=self._random.randint(1, 20))
                result = await self._store.append(
                    CLOCK_STREAM, [clock_tick_event(self._clock)], ANY
                )
                self._note(result.positions[0])
        except Refused:
            pass  # e.g. cancelling an order that has closed meanwhile: nothing appended

    async def _place(self, user: str) -> None:
        side = self._random.choice(("BUY", "SELL"))
        kind = "MARKET" if self._random.random() < 0.1 else "LIMIT"
        ticks = self._random.randint(-8, 8) + (-3 if side == "BUY" else 3)
        gtd = kind == "LIMIT" and self._random.random() < 0.15
        request = PlaceOrderInput(
            user_id=user,
            instrument="BTC-USD",
            side=side,
            type=kind,
            quantity=f"{self._random.randint(1, 20) / 10:.1f}",
            price=f"{100 + ticks / 100:.2f}" if kind == "LIMIT" else None,
            time_in_force="GTD" if gtd else None,
            expire_time=self._clock + timedelta(seconds=self._random.randint(5, 60))
            if gtd
            else None,
        )
        outcome = await self._handlers.place_order(request)
        self._placed.append((user, outcome.order.order_id))
        self._note(outcome.position)

    async def run(self, steps: int, concurrency: int = 4) -> None:
        """`steps` requests from `concurrency` writers (so appends share commits)."""
        remaining = [steps]

        async def writer() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await self.step()

        await asyncio.gather(*(writer() for _ in range(concurrency)))


async def progress_of(store: EventStore, shard: str = "main") -> dict[str, Any] | None:
    event = await last_event(store, engine_stream(shard))
    return None if event is None else event.data


async def wait_until_processed(
    store: EventStore, position: LogPosition, shard: str = "main"
) -> dict[str, Any]:
    """Poll the progress stream until it covers `position` (bounded)."""
    async with asyncio.timeout(BOUND_S):
        while True:
            progress = await progress_of(store, shard)
            if progress and LogPosition.parse(progress["last_input"]) >= position:
                return progress
            await asyncio.sleep(POLL_S)


async def read_everything(store: EventStore) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    after = None
    while batch := await store.read_all(after, limit=5000):
        events.extend(batch)
        after = batch[-1].position
    return events


async def input_events(store: EventStore) -> list[RecordedEvent]:
    return [e for e in await read_everything(store) if INPUT_FILTER.matches(e.stream, e.type)]


async def results_in_log(store: EventStore) -> dict[str, list[dict[str, Any]]]:
    """Engine results per stream, in stream order (requests, progress, snapshots left out)."""
    by_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in await read_everything(store):
        is_result = event.stream.startswith(
            (
                streams.ORDER_STREAM_PREFIX,
                streams.TRADES_STREAM_PREFIX,
                streams.BOOK_STREAM_PREFIX,
                streams.TRANSFER_STREAM_PREFIX,
                streams.INSTRUMENT_STREAM_PREFIX,
            )
        )
        if is_result and event.type not in REQUEST_EVENT_TYPES:
            by_stream[event.stream].append(event.data)
    return dict(by_stream)


async def results_of_replay(
    store: EventStore,
    instruments: Mapping[str, Instrument],
    closed_order_memory: int | None = None,
    assets: Mapping[str, int] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """What a fresh engine (accounts on with `assets`) emits for the log's inputs, per
    stream."""
    inputs = [(event.type, event.data) for event in await input_events(store)]
    by_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for stream, record in replay_inputs(inputs, instruments, closed_order_memory, assets):
        by_stream[stream].append(encode(record)[1])
    return dict(by_stream)
