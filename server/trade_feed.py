"""A live trade feed that may resume: the trades missed since a log position, then the live
ones, none twice and none missed. The gRPC StreamTrades and the HTTP trade stream both
serve this, so a resumed stream means the same on either."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from projections.live import Subscription
from projections.views import TradeView
from server.errors import Refused, Unavailable
from server.eventstore.port import LogPosition

# A resumed trade stream replays at most this many missed trades (more: list the trades).
MAX_RESUMED_TRADES = 1000
# How long a resume waits for the trades view to hold what the live feed published.
RESUME_WAIT_S = 5.0
TradesAfter = Callable[[str, LogPosition, int, float], Awaitable[list[Any] | None]]


class TooManyMissedTrades(Refused):
    status = "OUT_OF_RANGE"


class TradeFeed:
    """The missed trades, then the live ones after the last sent; iterate it, close it.
    Raises ``projections.live.SubscriberLagged`` when the subscriber falls behind."""

    def __init__(
        self,
        subscription: Subscription[TradeView],
        missed: list[TradeView],
        after: LogPosition | None,
    ) -> None:
        self._subscription = subscription
        self._missed = list(reversed(missed))
        self._last = after

    def __aiter__(self) -> TradeFeed:
        return self

    async def __anext__(self) -> TradeView:
        if self._missed:
            trade = self._missed.pop()
            self._last = LogPosition.parse(trade.position)
            return trade
        while True:
            trade = await self._subscription.__anext__()
            if self._last is None or LogPosition.parse(trade.position) > self._last:
                return trade

    def close(self) -> None:
        self._subscription.close()

    async def __aenter__(self) -> TradeFeed:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


async def _missed_trades(
    trades_after: TradesAfter | None, instrument: str, after: LogPosition | None
) -> list[TradeView]:
    if after is None or trades_after is None:
        return []
    try:
        missed = await trades_after(instrument, after, MAX_RESUMED_TRADES, RESUME_WAIT_S)
    except TimeoutError:
        raise Unavailable("the trades view is behind; retry") from None
    if missed is None:
        raise TooManyMissedTrades(
            f"more than {MAX_RESUMED_TRADES} trades since after_position: page through "
            "ListTrades, then stream from the newest"
        )
    return missed


async def trades_from(
    feeds: Any, trades_after: TradesAfter | None, instrument: str, after: LogPosition | None
) -> TradeFeed:
    """`instrument`'s trades after `after` (None: from now on), then live. Subscribed
    first, then the missed trades read: together they miss none. Refused (nothing
    subscribed) when the missed trades cannot be served."""
    subscription = feeds.subscribe_trades(instrument)
    try:
        missed = await _missed_trades(trades_after, instrument, after)
    except BaseException:
        subscription.close()
        raise
    return TradeFeed(subscription, missed, after)
