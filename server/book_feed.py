"""A live book feed with the instrument's status, for every transport: the snapshot first
(it carries the status), then book updates and status changes as they come. A status
change is sent only when the status differs from the one last sent, with the sequence of
the last book message (the book did not move)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from projections.views import BookSnapshot, BookUpdate, InstrumentStatusView


@dataclass(frozen=True, slots=True)
class StatusChange:
    instrument: str
    sequence: int  # the sequence of the last book message before it
    status: str  # TRADING, CANCEL_ONLY, HALTED
    position: str


BookItem = BookSnapshot | BookUpdate | StatusChange


class BookFeed:
    """Iterate it, close it. Raises ``projections.live.SubscriberLagged`` when either
    subscription falls behind."""

    def __init__(self, book: Any, statuses: Any) -> None:
        self._book = book
        self._statuses = statuses
        self._order = (book, statuses)  # the book first when both have an item
        self._pending: dict[asyncio.Future[Any], Any] = {}
        self._started = False
        self._status = "TRADING"
        self._sequence = 0

    def __aiter__(self) -> BookFeed:
        return self

    async def _next_of_either(self) -> Any:
        if not self._pending:
            for source in self._order:
                self._pending[asyncio.ensure_future(source.__anext__())] = source
        done, _ = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
        task = min(done, key=lambda t: self._order.index(self._pending[t]))
        source = self._pending.pop(task)
        item = task.result()  # StopAsyncIteration (a feed ended) ends this feed too
        self._pending[asyncio.ensure_future(source.__anext__())] = source
        return item

    async def __anext__(self) -> BookItem:
        if not self._started:
            snapshot = await self._book.__anext__()
            self._started = True
            self._status, self._sequence = snapshot.status, snapshot.sequence
            return snapshot  # type: ignore[no-any-return]
        while True:
            item = await self._next_of_either()
            if isinstance(item, InstrumentStatusView):
                if item.status == self._status:
                    continue
                self._status = item.status
                return StatusChange(item.instrument, self._sequence, item.status, item.position)
            if isinstance(item, BookSnapshot):
                self._status = item.status
            self._sequence = item.sequence
            return item  # type: ignore[no-any-return]

    def close(self) -> None:
        for task in self._pending:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a lag or an end nobody read is not an error
            task.cancel()
        self._pending.clear()
        self._book.close()
        self._statuses.close()

    async def __aenter__(self) -> BookFeed:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def book_from(feeds: Any, instrument: str, depth: int) -> BookFeed:
    """`instrument`'s book (`depth` levels a side in the snapshot) and status, live."""
    book = feeds.subscribe_book(instrument, depth)
    try:
        statuses = feeds.subscribe_instrument_status(instrument)
    except BaseException:
        book.close()
        raise
    return BookFeed(book, statuses)
