"""The seeded operation stream of issue #16's side-by-side: 70% limit, 10% market, 20% cancel.

Each operation is a plain tuple, so that whoever runs it builds its own command in the
timed loop: (LIMIT, order id, user id, is_buy, price ticks, lots), (MARKET, order id,
user id, is_buy, lots, max slippage bps) or (CANCEL, order id). Limit prices sit near the
mid (mid -5..+40 ticks on their own side, so about one in ten crosses); a cancel names an
order chosen uniformly among those resting at that moment (the stream is run through a
scratch `ReferenceBook` while it is made). Every order has its own user, so self-trade
prevention is checked on every match but never fires, and any two books that match by
price-time priority produce the same fills.
"""

from __future__ import annotations

import random
from typing import Any

from bench.reference_book import ReferenceBook

LIMIT, MARKET, CANCEL = 0, 1, 2
SYMBOL = "BENCH-USD"  # the one instrument the stream trades
MID_TICKS = 100_000
MAX_SLIPPAGE_BPS = 50

Operation = tuple[Any, ...]


def build_operations(count: int, seed: int) -> list[Operation]:
    rng = random.Random(seed)
    scratch = ReferenceBook()
    resting: list[str] = []
    operations: list[Operation] = []
    next_id = 0
    for _ in range(count):
        roll = rng.random()
        if roll < 0.2 and resting:
            # Uniformly among the orders resting now (filled ones are skipped lazily).
            while True:
                index = rng.randrange(len(resting))
                order_id = resting[index]
                resting[index] = resting[-1]
                resting.pop()
                if order_id in scratch.resting or not resting:
                    break
            scratch.cancel(order_id)
            operations.append((CANCEL, order_id))
            continue
        next_id += 1
        order_id = f"o{next_id}"
        user_id = f"u{next_id}"
        is_buy = rng.random() < 0.5
        if roll < 0.3:
            lots = rng.randint(1, 50) * 100
            scratch.market(order_id, is_buy, lots, MAX_SLIPPAGE_BPS)
            operations.append((MARKET, order_id, user_id, is_buy, lots, MAX_SLIPPAGE_BPS))
        else:
            offset = rng.randint(-5, 40)
            price = MID_TICKS - offset if is_buy else MID_TICKS + offset
            lots = rng.randint(1, 100) * 100
            scratch.limit(order_id, is_buy, price, lots)
            if order_id in scratch.resting:
                resting.append(order_id)
            operations.append((LIMIT, order_id, user_id, is_buy, price, lots))
    return operations
