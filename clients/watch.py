"""`exchange watch`: follow a live stream, and keep following it when it breaks.

When a stream breaks, the watcher subscribes again and says so on stderr:

- `ABORTED` (the service dropped this subscriber for falling behind) or a gap in the book's
  sequence numbers: at once.
- `UNAVAILABLE`, `RESOURCE_EXHAUSTED` (dropped for falling behind, or too many open
  streams), or the service ending the stream (it does so when it shuts down): after
  `RECONNECT_FIRST_DELAY_SECONDS`, doubling up to `RECONNECT_MAX_DELAY_SECONDS`.

Each break counts as an attempt; a subscription that shows something new resets the count.
After `retries` attempts in a row the watcher gives up with the last error (exit status 1).
Trades and order updates carry their log `position`: the positions of the last
`REMEMBERED_POSITIONS` messages shown are kept, and a message carrying one of them is not
shown again. The trade stream resumes after the last trade shown (`after_position`), so
no trade is missed; order updates published while no subscription was open are not
replayed (the notice says so). The book takes the new subscription's snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Any

import grpc
from rich.live import Live

from clients import render
from clients.book_mirror import BookSequenceGap, OrderBookMirror
from clients.client import ExchangeClient
from clients.errors import (
    AbortedError,
    ExchangeError,
    ResourceExhaustedError,
    UnavailableError,
    make_error,
)
from clients.models import BookSnapshot, BookUpdate
from clients.output import Output

DEFAULT_RETRIES = 5
RECONNECT_FIRST_DELAY_SECONDS = 0.5
RECONNECT_MAX_DELAY_SECONDS = 8.0
REMEMBERED_POSITIONS = 10_000


class ShownPositions:
    """The log positions of the last `capacity` messages shown."""

    def __init__(self, capacity: int = REMEMBERED_POSITIONS) -> None:
        self._order: deque[str] = deque()
        self._positions: set[str] = set()
        self._capacity = capacity

    def __contains__(self, position: str) -> bool:
        return position in self._positions

    def add(self, position: str) -> None:
        if not position or position in self._positions:
            return
        self._order.append(position)
        self._positions.add(position)
        if len(self._order) > self._capacity:
            self._positions.discard(self._order.popleft())


class _LogFeed:
    """Trades or order updates: one line (or JSON object) per message, none shown twice."""

    def __init__(
        self,
        subscribe_after: Callable[[str], AsyncGenerator[Any, None]],
        line: Callable[[Any], str],
        missed: str,
        output: Output,
    ) -> None:
        self._subscribe_after = subscribe_after
        self.missed = missed
        self._line = line
        self._output = output
        self._shown = ShownPositions()
        self._last_position = ""  # of the last message shown: where a resubscription resumes

    def subscribe(self) -> AsyncGenerator[Any, None]:
        return self._subscribe_after(self._last_position)

    def show(self, message: Any) -> bool:
        """Show `message` unless it was shown already; whether it was shown."""
        if message.position and message.position in self._shown:
            return False
        self._output.show(message, self._line)
        self._shown.add(message.position)
        self._last_position = message.position or self._last_position
        return True


class _BookFeed:
    """The book through a local mirror that checks every sequence number; a fresh mirror
    per subscription. On a terminal the book is redrawn in place; otherwise each message is
    one line (or JSON object), the snapshot a table."""

    missed = ""

    def __init__(
        self, exchange: ExchangeClient, instrument: str, depth: int, output: Output
    ) -> None:
        self._exchange = exchange
        self._instrument = instrument
        self._depth = depth
        self._output = output
        self._mirror = OrderBookMirror(instrument)
        redraw = not output.as_json and output.console.is_terminal
        self.live = Live(console=output.console, auto_refresh=False) if redraw else None

    def subscribe(self) -> AsyncGenerator[BookSnapshot | BookUpdate, None]:
        self._mirror = OrderBookMirror(self._instrument)
        return self._exchange.stream_order_book(self._instrument, depth=self._depth)

    def show(self, message: BookSnapshot | BookUpdate) -> bool:
        message = self._output.precision.apply(message)
        self._mirror.apply(message)  # BookSequenceGap: resubscribe
        if self.live is not None:
            table = render.book_table(
                self._mirror.instrument,
                self._mirror.bids(self._depth),
                self._mirror.asks(self._depth),
                caption=f"sequence {self._mirror.sequence}",
            )
            self.live.update(table, refresh=True)
        elif isinstance(message, BookSnapshot):
            self._output.show(
                message,
                lambda snapshot: render.book_table(
                    snapshot.instrument,
                    snapshot.bids,
                    snapshot.asks,
                    caption=f"snapshot, sequence {snapshot.sequence}",
                ),
            )
        else:
            self._output.show(message, render.book_message_line)
        return True


def _feed(exchange: ExchangeClient, arguments: Any, output: Output) -> _LogFeed | _BookFeed:
    if arguments.stream == "book":
        return _BookFeed(exchange, arguments.instrument, arguments.depth, output)
    if arguments.stream == "trades":
        # The trade stream resumes after the last trade shown: nothing is missed.
        return _LogFeed(
            lambda after: exchange.stream_trades(arguments.instrument, after_position=after),
            render.trade_line,
            "",
            output,
        )
    return _LogFeed(
        lambda _: exchange.stream_order_updates(arguments.user_id, instrument=arguments.instrument),
        render.order_update_line,
        "order updates meanwhile are not shown",
        output,
    )


def reconnect_delay(attempt: int) -> float:
    """Seconds before reconnect attempt `attempt` (1, 2, ...): doubling, capped."""
    return float(
        min(RECONNECT_FIRST_DELAY_SECONDS * 2 ** (attempt - 1), RECONNECT_MAX_DELAY_SECONDS)
    )


def _gave_up(problem: ExchangeError, attempts: int) -> ExchangeError:
    if attempts == 0:
        return problem
    plural = "" if attempts == 1 else "s"
    return make_error(
        problem.code,
        f"{problem.message} (gave up after {attempts} reconnect attempt{plural})",
        problem.field_violations,
        problem.reason,
        problem.metadata,
    )


def _warn(
    output: Output,
    problem: ExchangeError,
    delay: float,
    at_once: bool,
    attempt: int,
    retries: int,
    missed: str,
) -> None:
    """Say on stderr that the stream broke and what happens next (JSON with --json)."""
    if output.as_json:
        notice: dict[str, Any] = {
            "warning": problem.code.name,
            "message": problem.message,
            "reconnect_in_seconds": delay,
            "attempt": attempt,
            "retries": retries,
        }
        if missed:
            notice["not_shown"] = missed
        print(render.json_line(notice), file=sys.stderr, flush=True)
        return
    action = "resubscribing" if at_once else f"reconnecting in {delay:g} s"
    not_shown = f"; {missed}" if missed else ""
    print(
        f"warning: {render.error_text(problem)} "
        f"[{action}, attempt {attempt} of {retries}{not_shown}]",
        file=sys.stderr,
        flush=True,
    )


async def watch(exchange: ExchangeClient, arguments: Any, output: Output) -> None:
    """Follow the stream `arguments` name until `--count` messages were shown; raise the
    last ExchangeError once `--retries` reconnect attempts in a row have failed."""
    feed = _feed(exchange, arguments, output)
    remaining: int | None = arguments.count
    retries: int = arguments.retries
    failures = 0
    live = feed.live if isinstance(feed, _BookFeed) else None
    with live if live is not None else contextlib.nullcontext():
        while True:
            stream = feed.subscribe()
            problem: ExchangeError
            try:
                async for message in stream:
                    if not feed.show(message):
                        continue
                    failures = 0
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            return
                # A live stream has no end: the service ends it when it shuts down.
                problem, at_once = (
                    make_error(grpc.StatusCode.UNAVAILABLE, "the service ended the stream"),
                    False,
                )
            except AbortedError as dropped:
                problem, at_once = dropped, True
            except BookSequenceGap as gap:
                problem, at_once = make_error(grpc.StatusCode.DATA_LOSS, str(gap)), True
            except (UnavailableError, ResourceExhaustedError) as unavailable:
                # RESOURCE_EXHAUSTED: dropped as a slow subscriber, or this key holds too
                # many streams; after a pause, so a full stream cap is not hammered.
                problem, at_once = unavailable, False
            finally:
                await stream.aclose()
            failures += 1
            if failures > retries:
                raise _gave_up(problem, retries)
            delay = 0.0 if at_once else reconnect_delay(failures)
            _warn(output, problem, delay, at_once, failures, retries, feed.missed)
            if delay:
                await asyncio.sleep(delay)
