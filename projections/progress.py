"""How far each projection builder has got in the log, and waiting for it (read-your-writes).

A builder calls `ProjectionProgress.advance(name, position)` after each committed batch;
a query holding the `position` of a write calls `wait_for(position, timeout)` and wakes as
soon as the builders it reads from have committed that position (no polling: every waiter
holds a future resolved by `advance`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Position(Protocol):
    """A log position: totally ordered (the event store's `LogPosition`)."""

    def __lt__(self, other: Any, /) -> bool: ...
    def __le__(self, other: Any, /) -> bool: ...


@dataclass
class _Waiter:
    target: Any
    names: frozenset[str]
    future: asyncio.Future[None]


@dataclass
class BuilderProgress:
    """What one builder has committed: its position and when that event was recorded."""

    position: Any | None = None
    events_applied: int = 0
    committed_at_monotonic: float = field(default_factory=time.monotonic)
    loaded: bool = True  # False until the builder has loaded its checkpoint


class ProjectionProgress:
    """Positions of the registered builders; `wait_for` resolves when they reach a target."""

    def __init__(self) -> None:
        self._builders: dict[str, BuilderProgress] = {}
        self._waiters: list[_Waiter] = []

    def register(self, name: str, position: Any | None = None, *, loaded: bool = True) -> None:
        """Declare a builder (with its checkpoint) so that waits include it; `loaded=False`
        before its checkpoint is known (`position` then means nothing yet)."""
        self._builders[name] = BuilderProgress(position=position, loaded=loaded)
        self._wake()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._builders)

    def position(self, name: str) -> Any | None:
        """The last position `name` has committed (None before its first event)."""
        builder = self._builders.get(name)
        return None if builder is None else builder.position

    def positions(self) -> dict[str, Any | None]:
        return {name: builder.position for name, builder in self._builders.items()}

    def is_loaded(self, name: str) -> bool:
        """Whether `name`'s position is its checkpoint (or later), not a placeholder."""
        builder = self._builders.get(name)
        return builder is not None and builder.loaded

    def events_applied(self, name: str) -> int:
        builder = self._builders.get(name)
        return 0 if builder is None else builder.events_applied

    def advance(self, name: str, position: Any, events: int = 0) -> None:
        """Record that `name` has committed everything up to `position` (inclusive)."""
        builder = self._builders.setdefault(name, BuilderProgress())
        if builder.position is None or builder.position < position:
            builder.position = position
        builder.events_applied += events
        builder.committed_at_monotonic = time.monotonic()
        self._wake()

    def reached(self, position: Any, names: Iterable[str] | None = None) -> bool:
        """True when every named builder (default: all registered) has committed `position`."""
        selected = self._builders if names is None else names
        for name in selected:
            builder = self._builders.get(name)
            if builder is None or builder.position is None or builder.position < position:
                return False
        return True

    async def wait_for(
        self,
        position: Any,
        timeout: float | None,
        names: Iterable[str] | None = None,
    ) -> bool:
        """Wait until the builders (default: all registered) have committed `position`.

        Returns True once reached, False when `timeout` seconds pass first (None: no limit).
        """
        selected = frozenset(self._builders if names is None else names)
        if self.reached(position, selected):
            return True
        waiter = _Waiter(position, selected, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return True

    def _wake(self) -> None:
        if not self._waiters:
            return
        still_waiting: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            if self.reached(waiter.target, waiter.names):
                waiter.future.set_result(None)
            else:
                still_waiting.append(waiter)
        self._waiters = still_waiting
