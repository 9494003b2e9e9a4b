"""The engine runner: the log's order requests and clock ticks in, engine results out.

A process application with exactly-once effect:

- It subscribes (catch-up, then live) to the ``order-`` and ``clock`` streams, feeds each
  input to one ``MatchingEngine`` and writes everything the engine emitted for a batch of
  inputs in ONE atomic ``append_multi``, together with an ``EngineBatchProcessed`` event on
  its progress stream ``engine-<shard>`` at the exact expected version. It reads and writes
  only the log contract's records (``server.log_contract``: results through
  ``results.ResultEncoder``, its own records through the mapper).
- Exactly-once: the progress event records the last input of the batch. After a crash at
  any point the runner restores its state and resumes strictly after that input; results
  of a batch are either all in the log (with its progress event) or none of them is.
- Fencing: a second runner for the same shard appends at a version the first already used,
  gets ``WrongExpectedVersion`` and nothing of its batch is written; it drops its state,
  waits, and rebuilds from the log before trying again.
- Snapshots: every ``snapshot_every`` inputs the engine state is written to
  ``engine-snapshot-<shard>`` in the same atomic append; the progress event names the
  latest snapshot's version, so a restart loads that snapshot and re-runs only the inputs
  after it (their outputs are already in the log, and the engine is deterministic).
  The count toward the next snapshot starts from the latest snapshot, or from the log's
  first input when there is none, so restarts do not postpone the first one. A snapshot
  that cannot be encoded is skipped (logged and counted): matching goes on without it.
- Accounts (``assets`` given, ``ACCOUNTS_ENABLED=1``): a new engine is set up from the
  configuration (assets, accounts on, instruments: ``engine_inputs.prepare_engine``) and
  the setup's records (``AssetAdded``, ``AccountsEnabled``) go to the ``venue`` stream with
  the first batch written after it (only those the stream lacks). Loading refuses a log
  written in the other mode (``server.accounts_mode``): ``AccountsModeMismatch``.
- An input it cannot process stops it there: the batch that failed is handled again one
  input at a time, the input that fails is reported to ``ConsumerFailures`` (position,
  type, reason; metrics, one log line, the service's health) and retried with back-off
  (``retry_delay_s`` doubling up to ``retry_max_s``), from a fresh state each time, until it
  goes through (a repaired record, a fixed cause). Nothing after it is processed meanwhile,
  and its lag against the log's head (``LagWatcher``) keeps growing.

Run alone with ``python -m server.engine_runner`` (the tests kill it with SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from domain import events as domain_events
from domain.commands import (
    AddInstrument,
    AdvanceTime,
    AmendOrder,
    CancelOrder,
    Deposit,
    PlaceOrder,
    SetInstrumentStatus,
    Withdraw,
)
from domain.engine import MatchingEngine
from domain.errors import InvalidField
from domain.instruments import Instrument
from server.accounts_mode import AccountsModeMismatch, check_accounts_mode, mismatch
from server.consumers.tasks import stop_task
from server.engine_inputs import (
    InputTranslator,
    decode_input,
    logged_results,
    new_engine,
    prepare_engine,
    refused_input,
)
from server.eventstore.port import (
    NO_STREAM,
    EventFilter,
    EventStore,
    Expectation,
    LogPosition,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    WrongExpectedVersion,
)
from server.log_contract.layout import (
    CAUSATION_ID,
    CORRELATION_ID,
    ENGINE_INPUT_EVENT_TYPES,
    ENGINE_INPUT_STREAM_PREFIXES,
    TRACEPARENT,
    engine_snapshot_stream,
    engine_stream,
)
from server.log_contract.mapper import decode, encode
from server.log_contract.records import (
    ClockTicked,
    EngineBatchProcessed,
    EngineSnapshotTaken,
    LogRecord,
    OrderPlaceRequested,
    Request,
)
from server.log_contract.results import ResultEncoder
from server.observability import metrics
from server.observability.consumer_failures import ConsumerFailures
from server.observability.consumer_lag import DEFAULT_INTERVAL_S, NOT_LOADED, LagWatcher, Reading
from server.observability.tracing import span_from_metadata

log = structlog.get_logger(__name__)

CONSUMER = "engine"  # the consumer label of the lag metrics
COMMAND_NAMES: dict[type, str] = {
    PlaceOrder: "place",
    CancelOrder: "cancel",
    AmendOrder: "amend",
    AdvanceTime: "advance_time",
    AddInstrument: "add_instrument",
    Deposit: "deposit",
    Withdraw: "withdraw",
    SetInstrumentStatus: "instrument_status",
}

INPUT_FILTER = EventFilter(
    stream_prefixes=ENGINE_INPUT_STREAM_PREFIXES, event_types=ENGINE_INPUT_EVENT_TYPES
)


class FencedOut(Exception):
    """Another runner wrote the progress stream first; this one's state is stale."""


class InputNotProcessed(Exception):
    """The input `event` could not be processed (alone in its batch): `cause` says why."""

    def __init__(self, event: RecordedEvent, cause: BaseException) -> None:
        self.event = event
        self.cause = cause
        super().__init__(
            f"engine cannot process {event.type} at {event.position}: "
            f"{type(cause).__name__}: {str(cause)[:300]}"
        )


@dataclass(frozen=True)
class Progress:
    """What the progress stream says: its version and the last input it covers."""

    version: int  # -1: no progress stream yet
    last_input: LogPosition | None
    snapshot_version: int | None
    inputs_total: int

    @property
    def expected_version(self) -> Expectation:
        return NO_STREAM if self.version < 0 else self.version


NO_PROGRESS = Progress(version=-1, last_input=None, snapshot_version=None, inputs_total=0)


async def last_event(event_store: EventStore, stream: str) -> RecordedEvent | None:
    """The last event of a stream with O(log n) single-event reads (the port reads forward)."""
    first = await event_store.read_stream(stream, 0, limit=1)
    if not first:
        return None
    low, found = 0, first[0]  # `low` is a version known to exist
    step = 1
    while True:  # gallop to a missing version
        probe = await event_store.read_stream(stream, low + step, limit=1)
        if not probe:
            high = low + step  # known missing
            break
        low, found = low + step, probe[0]
        step *= 2
    while high - low > 1:
        middle = (low + high) // 2
        probe = await event_store.read_stream(stream, middle, limit=1)
        if probe:
            low, found = middle, probe[0]
        else:
            high = middle
    return found


async def read_progress(event_store: EventStore, shard: str) -> Progress:
    """What a shard's progress stream says now."""
    return _progress_of(await last_event(event_store, engine_stream(shard)))


def _progress_of(event: RecordedEvent | None) -> Progress:
    if event is None:
        return NO_PROGRESS
    record = decode(event)
    if not isinstance(record, EngineBatchProcessed):
        raise TypeError(f"{event.type} at {event.position} in a progress stream")
    return Progress(
        version=event.version,
        last_input=LogPosition.parse(record.last_input) if record.last_input else None,
        snapshot_version=record.snapshot_version,
        inputs_total=record.inputs_total,
    )


def _new_event(record: LogRecord, metadata: Mapping[str, str] | None = None) -> NewEvent:
    """The event to append for a record (through the one mapper)."""
    event_type, data, version_metadata = encode(record)
    return NewEvent(type=event_type, data=data, metadata={**(metadata or {}), **version_metadata})


# One result to append: (stream, event type, JSON data, metadata of its record's version).
Emitted = tuple[str, str, dict[str, Any], dict[str, str]]


def _logged_before(item: Emitted, accounts_enabled: bool, assets: frozenset[str]) -> bool:
    """Whether the venue stream already holds this setup record."""
    _, event_type, data, _ = item
    if event_type == domain_events.AccountsEnabled.__name__:
        return accounts_enabled
    if event_type == domain_events.AssetAdded.__name__:
        return data.get("asset") in assets
    return False


class EngineRunner:
    """Runs one shard's matching engine from the log until stopped."""

    def __init__(
        self,
        event_store: EventStore,
        instruments: Mapping[str, Instrument],
        shard: str = "main",
        batch_max: int = 1000,
        snapshot_every: int = 10000,
        retry_delay_s: float = 1.0,
        backend: str = "postgresql",
        closed_order_memory: int = 0,
        failures: ConsumerFailures | None = None,
        retry_max_s: float = 5.0,
        lag_check_s: float = DEFAULT_INTERVAL_S,
        assets: Mapping[str, int] | None = None,
    ) -> None:
        """`assets` (asset -> precision): accounts on, with these assets; None: off."""
        self._event_store = event_store
        self._assets = None if assets is None else dict(assets)
        # 0 or less: the engine remembers every closed order id (unbounded snapshots).
        self._closed_order_memory = closed_order_memory if closed_order_memory > 0 else None
        self._instruments = instruments
        self._shard = shard
        self.shard = shard
        self._progress_stream = engine_stream(shard)
        self._snapshot_stream = engine_snapshot_stream(shard)
        self._batch_max = max(1, batch_max)
        self._snapshot_every = snapshot_every
        self._retry_delay_s = retry_delay_s
        self._retry_max_s = max(retry_delay_s, retry_max_s)
        self._backend = backend  # label of the event-store metrics
        self.runner_id = str(uuid.uuid4())
        self._task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self.failures = ConsumerFailures() if failures is None else failures
        self.failures.declare(CONSUMER)
        self.lag = LagWatcher(event_store, lag_check_s)
        self.lag.watch(CONSUMER, self._lag_reading, INPUT_FILTER)
        self._loaded = False  # progress read from the log at least once
        # After a batch of several inputs failed: one input per batch up to its last input,
        # so the one that fails is named.
        self._careful_until: LogPosition | None = None
        self._failed_attempts = 0
        # State of the current life (rebuilt from the log after a fence or an error).
        self.engine: MatchingEngine = new_engine(
            instruments, self._closed_order_memory, self._assets
        )
        self._translator = InputTranslator(instruments, self._assets)
        self._results = ResultEncoder(instruments, self.engine.assets)
        # The setup's records the venue stream lacks, written with the next batch.
        self._pending_setup: list[Emitted] = []
        self.progress: Progress = NO_PROGRESS
        self._inputs_since_snapshot = 0
        self.fenced_count = 0
        self.batches_written = 0
        self.last_processed: LogPosition | None = None
        # Highest log position of an engine result this runner wrote (not progress/snapshot).
        self.last_result_position: LogPosition | None = None
        self._position_waiters: list[tuple[LogPosition, asyncio.Future[None]]] = []

    @property
    def inputs_since_snapshot(self) -> int:
        """Inputs processed since the latest snapshot (since the log's start without one)."""
        return self._inputs_since_snapshot

    # -- state loading -------------------------------------------------------------------

    async def load_state(self) -> LogPosition | None:
        """Restore the engine from the latest snapshot; return where to read inputs from."""
        self.progress = _progress_of(await last_event(self._event_store, self._progress_stream))
        accounts_on = self._assets is not None
        venue = await check_accounts_mode(self._event_store, accounts_on, self.progress.last_input)
        self.engine = MatchingEngine(
            closed_order_memory=self._closed_order_memory, book_deltas=True
        )
        self._translator = InputTranslator(self._instruments, self._assets)
        # With no snapshot yet, count from the log's first input: a runner restarted more
        # often than every snapshot_every inputs still takes its first one.
        self._inputs_since_snapshot = self.progress.inputs_total
        self._loaded = True
        after: LogPosition | None = None
        if self.progress.snapshot_version is not None:
            events = await self._event_store.read_stream(
                self._snapshot_stream, self.progress.snapshot_version, limit=1
            )
            snapshot = decode(events[0])
            if not isinstance(snapshot, EngineSnapshotTaken):
                raise TypeError(f"{events[0].type} in the snapshot stream {self._snapshot_stream}")
            # The configured memory wins over the snapshot's (the oldest closed ids beyond it
            # are forgotten at the next clock step), so a snapshot taken unbounded shrinks.
            engine_state = {**snapshot.engine, "closed_order_memory": self._closed_order_memory}
            if snapshot.engine.get("accounts") is not None and not accounts_on:
                raise AccountsModeMismatch(mismatch(True, False, False) or "")
            self.engine = MatchingEngine.restore(engine_state, book_deltas=True)
            after = LogPosition.parse(snapshot.last_input)
            self._inputs_since_snapshot = self.progress.inputs_total - snapshot.inputs_total
        setup = prepare_engine(self.engine, self._instruments, self._assets)
        self._pending_setup = [
            item
            for item in logged_results(setup, ResultEncoder(self._instruments, self.engine.assets))
            if not _logged_before(item, venue.accounts_enabled, venue.assets)
        ]
        self._results = ResultEncoder(self._instruments, self.engine.assets)
        log.info(
            "engine_state_loaded",
            shard=self._shard,
            progress_version=self.progress.version,
            last_input=str(self.progress.last_input),
            snapshot_version=self.progress.snapshot_version,
            replay_from=str(after),
        )
        return after

    # -- batches -------------------------------------------------------------------------

    def _handle(self, event: RecordedEvent) -> tuple[ClockTicked | Request | None, list[Emitted]]:
        """The input's record and the results it makes, ready to append."""
        emitted: list[Emitted] = []
        with span_from_metadata("engine.match", event.metadata):
            # UnreadableRecord (a broken log, not a refusal) stops the runner here.
            record = decode_input(event.type, event.data)
            if record is None:
                return None, emitted
            try:
                commands = self._translator.commands_of(record, self.engine.now)
            except InvalidField as error:
                log.error("engine_input_unreadable", event_id=str(event.event_id), error=str(error))
                for stream, refusal in refused_input(record, error):
                    emitted.append((stream, *encode(refusal)))
                return record, emitted
            for command in commands:
                started = time.perf_counter()
                results = self.engine.handle(command)
                metrics.observe_engine_command(
                    COMMAND_NAMES.get(type(command), "other"), time.perf_counter() - started
                )
                emitted.extend(logged_results(results, self._results))
        return record, emitted

    def _snapshot_event(self, last_input: LogPosition, inputs_total: int) -> NewEvent | None:
        """The snapshot to append, or None when the state cannot be encoded as the log's
        JSON (say a value beyond 64-bit integers): a snapshot only saves replay time, so
        the batch is written without it rather than not at all."""
        record = EngineSnapshotTaken(
            engine=self.engine.snapshot(),
            last_input=last_input.to_token(),
            inputs_total=inputs_total,
        )
        try:
            event = _new_event(record)
            orjson.dumps(event.data)  # what the event store's adapters encode with
        except (TypeError, ValueError) as error:
            metrics.record_engine_snapshot_failure()
            log.error(
                "engine_snapshot_unwritable",
                shard=self._shard,
                inputs_total=inputs_total,
                error=str(error)[:300],
            )
            return None
        return event

    async def process_batch(self, batch: list[RecordedEvent]) -> list[dict[str, Any]]:
        """Handle a batch of inputs; append their results with the progress event.

        Inputs at or before the recorded progress are re-handled only to rebuild state:
        their results are already in the log.
        """
        events_by_stream: dict[str, list[NewEvent]] = {}
        emitted_all: list[dict[str, Any]] = []
        last_input: LogPosition | None = None
        new_inputs = 0
        new_input_records: list[ClockTicked | Request] = []
        recorded = self.progress.last_input
        for input_event in batch:
            input_record, emitted = self._handle(input_event)
            if recorded is not None and input_event.position <= recorded:
                continue
            last_input = input_event.position
            new_inputs += 1
            if input_record is not None:
                new_input_records.append(input_record)
            metadata = {
                CAUSATION_ID: str(input_event.event_id),
                CORRELATION_ID: input_event.metadata.get(CORRELATION_ID)
                or str(input_event.event_id),
            }
            traceparent = input_event.metadata.get(TRACEPARENT)
            if traceparent:
                metadata[TRACEPARENT] = traceparent
            for stream, event_type, data, version_metadata in emitted:
                # An atomic append names each stream once: a stream's events keep the
                # engine's order; across streams the log orders them stream by stream.
                events_by_stream.setdefault(stream, []).append(
                    NewEvent(
                        type=event_type,
                        data=data,
                        metadata={**metadata, **version_metadata} if version_metadata else metadata,
                    )
                )
                emitted_all.append(data)
        if last_input is None:
            return emitted_all
        if self._pending_setup:  # before the batch's results: the engine's order
            setup_events = [
                NewEvent(type=event_type, data=data, metadata=version_metadata)
                for _, event_type, data, version_metadata in self._pending_setup
            ]
            stream = self._pending_setup[0][0]
            events_by_stream[stream] = setup_events + events_by_stream.get(stream, [])
        appends = [StreamAppend(stream, events) for stream, events in events_by_stream.items()]
        self._inputs_since_snapshot += new_inputs
        inputs_total = self.progress.inputs_total + new_inputs
        snapshot_version = self.progress.snapshot_version
        snapshot_due = (
            self._snapshot_every > 0 and self._inputs_since_snapshot >= self._snapshot_every
        )
        snapshot = self._snapshot_event(last_input, inputs_total) if snapshot_due else None
        if snapshot is not None:
            expected: Expectation = NO_STREAM if snapshot_version is None else snapshot_version
            appends.append(StreamAppend(self._snapshot_stream, [snapshot], expected))
            snapshot_version = 0 if snapshot_version is None else snapshot_version + 1
        progress_event = _new_event(
            EngineBatchProcessed(
                last_input=last_input.to_token(),
                inputs=new_inputs,
                inputs_total=inputs_total,
                snapshot_version=snapshot_version,
                runner_id=self.runner_id,
            )
        )
        appends.append(
            StreamAppend(self._progress_stream, [progress_event], self.progress.expected_version)
        )
        event_count = sum(len(append.events) for append in appends)
        try:
            with metrics.time_append(self._backend, event_count):
                results = await self._event_store.append_multi(appends)
        except WrongExpectedVersion as error:
            raise FencedOut(str(error)) from error
        self._record_batch_metrics(new_input_records, emitted_all)
        for result in results[: len(events_by_stream)]:
            if result.last_position is not None and (
                self.last_result_position is None
                or self.last_result_position < result.last_position
            ):
                self.last_result_position = result.last_position
        self._pending_setup = []
        if snapshot_due:  # taken, or skipped until the next one is due
            self._inputs_since_snapshot = 0
        self.progress = Progress(
            version=self.progress.version + 1,
            last_input=last_input,
            snapshot_version=snapshot_version,
            inputs_total=inputs_total,
        )
        self.batches_written += 1
        return emitted_all

    def _record_batch_metrics(
        self, new_inputs: list[ClockTicked | Request], emitted: list[dict[str, Any]]
    ) -> None:
        metrics.record_engine_events("", emitted)
        metrics.observe_engine_batch(len(new_inputs))
        metrics.record_consumer_processed(CONSUMER, len(new_inputs))
        now = datetime.now(UTC)
        for request in new_inputs:
            if isinstance(request, OrderPlaceRequested):
                metrics.observe_place_to_ack(
                    request.instrument, (now - request.requested_at).total_seconds()
                )

    # -- the loop ------------------------------------------------------------------------

    async def _read_inputs(
        self, after: LogPosition | None, queue: asyncio.Queue[RecordedEvent | BaseException]
    ) -> None:
        try:
            async for event in self._event_store.subscribe_all(after, INPUT_FILTER):
                if event.type in ENGINE_INPUT_EVENT_TYPES:
                    await queue.put(event)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # hand the failure to the processing loop
            await queue.put(error)

    def _mark_processed(self, position: LogPosition) -> None:
        self.last_processed = position
        if self._position_waiters:
            still_waiting = []
            for target, future in self._position_waiters:
                if target <= position:
                    if not future.done():
                        future.set_result(None)
                else:
                    still_waiting.append((target, future))
            self._position_waiters = still_waiting

    async def wait_processed(self, position: LogPosition) -> None:
        """Wait until this runner has processed (and written) the input at `position`."""
        if self.last_processed is not None and position <= self.last_processed:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._position_waiters.append((position, future))
        await future

    async def run_once(self) -> None:
        """One life: load state, then process inputs until an error or cancellation."""
        after = await self.load_state()
        queue: asyncio.Queue[RecordedEvent | BaseException] = asyncio.Queue(
            maxsize=self._batch_max * 4
        )
        reader = asyncio.create_task(self._read_inputs(after, queue), name="engine-input-reader")
        try:
            while True:
                item = await queue.get()
                batch: list[RecordedEvent] = []
                batch_max = 1 if self._careful_until is not None else self._batch_max
                while True:
                    if isinstance(item, BaseException):
                        if batch:
                            await self._run_batch(batch)
                        raise item
                    batch.append(item)
                    if len(batch) >= batch_max or queue.empty():
                        break
                    item = queue.get_nowait()
                await self._run_batch(batch)
                # Lag is measured against the log's head by self.lag.
                metrics.set_queue_length("engine_input", queue.qsize())
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _run_batch(self, batch: list[RecordedEvent]) -> None:
        started = time.perf_counter()
        try:
            await self.process_batch(batch)
        except FencedOut:
            raise
        except Exception as error:
            if len(batch) == 1:
                raise InputNotProcessed(batch[0], error) from error
            # The engine's state is spoiled: the next life goes one input at a time up to
            # here, so the input at fault is named (and everything before it written).
            self._careful_until = batch[-1].position
            raise
        position = batch[-1].position
        self._failed_attempts = 0
        if self._careful_until is not None and self._careful_until <= position:
            self._careful_until = None
        self.failures.passed(CONSUMER, position)
        self._mark_processed(position)
        elapsed = time.perf_counter() - started
        log.debug("engine_batch", inputs=len(batch), seconds=round(elapsed, 6))

    async def run_forever(self) -> None:
        while True:
            delay = self._retry_delay_s
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except FencedOut as error:
                self.fenced_count += 1
                log.warning("engine_fenced_out", shard=self._shard, error=str(error))
            except InputNotProcessed as error:
                delay = self._next_retry_delay()
                self.failures.failed(CONSUMER, error.event, error.cause)
            except Exception as error:
                delay = self._next_retry_delay()
                # No input to blame (the log unreachable, say, or a batch of several that
                # the next life goes through one by one): counted, and logged in full once.
                self.failures.failed(CONSUMER, None, error)
                log.error(
                    "engine_runner_failed",
                    shard=self._shard,
                    error=f"{type(error).__name__}: {str(error)[:300]}",
                    retry_in_s=delay,
                    exc_info=self._failed_attempts == 1,
                )
            await asyncio.sleep(delay)

    def _next_retry_delay(self) -> float:
        self._failed_attempts += 1
        return min(self._retry_max_s, self._retry_delay_s * 2.0 ** (self._failed_attempts - 1))

    def _lag_reading(self) -> Reading:
        if not self._loaded:
            return NOT_LOADED, 0
        return self.progress.last_input, self.progress.inputs_total

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever(), name=f"engine-{self._shard}")
        if self._lag_task is None:
            self._lag_task = asyncio.create_task(self.lag.run(), name=f"engine-{self._shard}-lag")

    async def stop(self) -> None:
        for task in (self._task, self._lag_task):
            await stop_task(task)
        self._task = self._lag_task = None


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """A child runner stops when the process that started it is gone."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    log.warning("engine_parent_gone", parent_pid=parent_pid)
    stop.set()


async def _main() -> None:
    """Run the engine runner alone (used by crash tests and for a separate engine process)."""
    from server.app import configure_process, load_runtime_settings
    from server.eventstore import open_event_store
    from server.instrument_config import load_venue_for

    settings = load_runtime_settings()
    configure_process(settings)
    venue = load_venue_for(settings)
    event_store = await open_event_store(settings.resolved_event_store_url)
    runner = EngineRunner(
        event_store,
        venue.instruments,
        assets=venue.assets if settings.accounts_enabled else None,
        shard=settings.engine_shard,
        batch_max=settings.engine_batch_max,
        snapshot_every=settings.snapshot_every,
        closed_order_memory=settings.closed_order_memory,
        retry_max_s=settings.consumer_retry_max_s,
        lag_check_s=settings.consumer_lag_check_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if settings.metrics_port >= 0:
        try:
            metrics.start_metrics_server(settings.metrics_port, addr=settings.metrics_host)
        except OSError as error:  # matching matters more than its metrics: go on without
            log.error(
                "engine_metrics_port_unavailable", port=settings.metrics_port, error=str(error)
            )
    runner.start()
    log.info(
        "engine_runner_started", runner_id=runner.runner_id, shard=runner.shard, pid=os.getpid()
    )
    parent_pid = os.environ.get("ENGINE_PARENT_PID")
    watcher = (
        asyncio.create_task(_stop_when_orphaned(int(parent_pid), stop)) if parent_pid else None
    )
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    await runner.stop()
    await event_store.close()


if __name__ == "__main__":
    asyncio.run(_main())
