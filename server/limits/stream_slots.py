"""Open streaming calls per key: a counter per key with a cap.

``open`` takes a slot (False when the key holds ``cap`` already), ``close`` gives it back;
the count is exported as ``exchange_open_streams{key}``.
"""

from __future__ import annotations

from server.observability import metrics


class StreamSlots:
    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("MAX_STREAMS_PER_KEY must be >= 1")
        self.cap = cap
        self._open_by_key: dict[str, int] = {}

    def open(self, key: str) -> bool:
        held = self._open_by_key.get(key, 0)
        if held >= self.cap:
            return False
        self._open_by_key[key] = held + 1
        metrics.set_open_streams(key, held + 1)
        return True

    def close(self, key: str) -> None:
        held = self._open_by_key.get(key, 0) - 1
        if held > 0:
            self._open_by_key[key] = held
        else:
            # No entry (and no metric child) for a key with no open stream: both stay
            # bounded by the keys streaming now.
            self._open_by_key.pop(key, None)
            held = 0
        metrics.set_open_streams(key, held)

    def held(self, key: str) -> int:
        return self._open_by_key.get(key, 0)
