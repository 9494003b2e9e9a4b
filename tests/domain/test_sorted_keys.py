"""`SortedKeys` against a plain sorted set, through any sequence of adds and removes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.sorted_keys import CHUNK, SortedKeys

# Enough distinct keys that chunks split and empty again.
keys = st.integers(min_value=-4 * CHUNK, max_value=4 * CHUNK)


@given(st.lists(st.tuples(st.booleans(), keys), max_size=3000))
def test_sorted_keys_hold_what_a_sorted_set_holds(operations: list[tuple[bool, int]]) -> None:
    model: set[int] = set()
    sorted_keys = SortedKeys()
    for add, key in operations:
        if add and key not in model:
            model.add(key)
            sorted_keys.add(key)
        elif not add and key in model:
            model.remove(key)
            sorted_keys.remove(key)
        expected = sorted(model)
        assert len(sorted_keys) == len(expected)
        assert sorted_keys.first() == (expected[0] if expected else None)
    expected = sorted(model)
    assert list(sorted_keys.up_to()) == expected
    assert list(sorted_keys.up_to(0)) == [key for key in expected if key <= 0]
    assert sorted_keys.first_n(3) == expected[:3]
    assert sorted_keys.first_n(CHUNK + 5) == expected[: CHUNK + 5]


def test_many_ascending_then_descending_keys_stay_in_order() -> None:
    sorted_keys = SortedKeys()
    for key in range(10 * CHUNK):
        sorted_keys.add(key)
    for key in range(-1, -10 * CHUNK, -1):
        sorted_keys.add(key)
    assert list(sorted_keys.up_to()) == list(range(-10 * CHUNK + 1, 10 * CHUNK))
    for key in range(0, 10 * CHUNK, 2):
        sorted_keys.remove(key)
    assert sorted_keys.first_n(4) == [
        -10 * CHUNK + 1,
        -10 * CHUNK + 2,
        -10 * CHUNK + 3,
        -10 * CHUNK + 4,
    ]
    assert list(sorted_keys.up_to(7)) == [*range(-10 * CHUNK + 1, 0), 1, 3, 5, 7]


def test_removing_a_key_that_is_not_there_is_an_error() -> None:
    sorted_keys = SortedKeys()
    sorted_keys.add(5)
    with pytest.raises(ValueError):
        sorted_keys.remove(4)
    with pytest.raises(ValueError):
        sorted_keys.remove(6)
    assert list(sorted_keys.up_to()) == [5]
