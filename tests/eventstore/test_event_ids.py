"""Event ids: what the port's cheap generator must still guarantee (no database needed)."""

from __future__ import annotations

import multiprocessing
import uuid

from server.eventstore import NewEvent
from server.eventstore.port import new_event_id


def test_event_ids_are_distinct_version_4_uuids() -> None:
    ids = [NewEvent("T", {}).event_id for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert {event_id.version for event_id in ids} == {4}
    assert {event_id.variant for event_id in ids} == {uuid.RFC_4122}
    assert all(uuid.UUID(str(event_id)) == event_id for event_id in ids[:100])


def _child_ids(queue: multiprocessing.Queue[list[uuid.UUID]]) -> None:
    queue.put([new_event_id() for _ in range(3)])


def test_a_forked_process_draws_other_ids_than_its_parent() -> None:
    # The generator's state is copied into a forked child; unless it is reseeded there,
    # parent and child would write the same event ids (and one append would be taken
    # for a repeat of the other).
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[uuid.UUID]] = context.Queue()
    child = context.Process(target=_child_ids, args=(queue,))
    child.start()
    from_child = queue.get(timeout=30)
    child.join(timeout=30)
    from_parent = [new_event_id() for _ in range(3)]
    assert not set(from_child) & set(from_parent)


def test_seeding_the_random_module_does_not_repeat_event_ids() -> None:
    # Anything in the process may seed `random` (hypothesis does, for every example):
    # the ids must not follow it, or two appends would carry the same ids.
    import random

    random.seed(42)
    first = [new_event_id() for _ in range(3)]
    random.seed(42)
    again = [new_event_id() for _ in range(3)]
    assert not set(first) & set(again)
