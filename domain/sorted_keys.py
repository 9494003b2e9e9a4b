"""The sorted price keys of one book side: distinct integers, ascending.

A list of sorted chunks (each at most 2 * `CHUNK` keys) with the last key of each in
`maxes`: adding or removing a key is a bisect in `maxes`, a bisect and a list insert or
delete within one chunk, so the cost stays bounded by the chunk size however deep the
book grows. It does only what `domain.book.BookSide` needs, and it is compiled with the
engine (`sortedcontainers.SortedList`, which it replaces there, stays interpreted Python
and was a tenth of the compiled engine's instructions per operation).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Final

CHUNK: Final = 256


class SortedKeys:
    __slots__ = ("_chunks", "_maxes", "_size")

    def __init__(self) -> None:
        self._chunks: list[list[int]] = []
        self._maxes: list[int] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def first(self) -> int | None:
        """The smallest key, or None when there is none."""
        chunks = self._chunks
        return chunks[0][0] if chunks else None

    def add(self, key: int) -> None:
        """Add a key that is not there yet."""
        chunks = self._chunks
        maxes = self._maxes
        self._size += 1
        if not maxes:
            chunks.append([key])
            maxes.append(key)
            return
        index = bisect_left(maxes, key)
        if index == len(maxes):
            index -= 1
            chunk = chunks[index]
            chunk.append(key)
            maxes[index] = key
        else:
            chunk = chunks[index]
            insort(chunk, key)
        if len(chunk) > 2 * CHUNK:
            upper = chunk[CHUNK:]
            del chunk[CHUNK:]
            maxes[index] = chunk[-1]
            chunks.insert(index + 1, upper)
            maxes.insert(index + 1, upper[-1])

    def remove(self, key: int) -> None:
        """Remove a key; ValueError when it is not there."""
        chunks = self._chunks
        maxes = self._maxes
        index = bisect_left(maxes, key)
        if index == len(maxes):
            raise ValueError(f"{key} is not in the keys")
        chunk = chunks[index]
        position = bisect_left(chunk, key)
        if chunk[position] != key:
            raise ValueError(f"{key} is not in the keys")
        del chunk[position]
        self._size -= 1
        if not chunk:
            del chunks[index]
            del maxes[index]
        elif position == len(chunk):
            maxes[index] = chunk[-1]

    def up_to(self, maximum: int | None = None) -> Iterator[int]:
        """The keys in ascending order, only those <= `maximum` when it is given."""
        for chunk in self._chunks:
            for key in chunk:
                if maximum is not None and key > maximum:
                    return
                yield key

    def first_n(self, count: int) -> list[int]:
        """The `count` smallest keys (fewer when there are fewer)."""
        keys: list[int] = []
        for chunk in self._chunks:
            if len(keys) >= count:
                break
            keys.extend(chunk[: count - len(keys)])
        return keys
