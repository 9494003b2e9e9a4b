"""A deliberately naive reference order book for the property tests.

Resting orders live in one flat list; every match sorts the whole opposite side by
(price, arrival). Slow and obviously right: the engine must agree with it trade for trade.
It covers LIMIT/MARKET, GTC/IOC/FOK, post-only, slippage, STP, cancel and amend.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field


@dataclass
class NaiveOrder:
    order_id: str
    user: str
    is_buy: bool
    is_market: bool
    price: int | None
    quantity: int
    tif: str
    post_only: bool
    stp: str
    bps: int | None
    remaining: int = 0
    filled: int = 0
    seq: int = 0


@dataclass
class Outcome:
    """What one command did: trades (maker, taker, price, qty) and cancels/rejects."""

    trades: list[tuple[str, str, int, int]] = field(default_factory=list)
    cancels: list[tuple[str, str, int]] = field(default_factory=list)  # id, reason, qty
    rejected: str | None = None


class NaiveBook:
    def __init__(self) -> None:
        self.resting: list[NaiveOrder] = []
        self.closed: set[str] = set()
        self.seq = 0

    def find(self, order_id: str) -> NaiveOrder | None:
        for order in self.resting:
            if order.order_id == order_id:
                return order
        return None

    def _opposite_sorted(self, taker: NaiveOrder) -> list[NaiveOrder]:
        others = [o for o in self.resting if o.is_buy != taker.is_buy]
        if taker.is_buy:
            return sorted(others, key=lambda o: (o.price, o.seq))
        return sorted(others, key=lambda o: (-(o.price or 0), o.seq))

    def _acceptable(self, taker: NaiveOrder, price: int, limit: int | None) -> bool:
        if limit is None:
            return True
        return price <= limit if taker.is_buy else price >= limit

    def _limit_of(self, taker: NaiveOrder) -> int | None:
        if not taker.is_market:
            return taker.price
        if taker.bps is None:
            return None
        opposite = self._opposite_sorted(taker)
        if not opposite:
            return None
        best = opposite[0].price
        assert best is not None
        if taker.is_buy:
            return best * (10_000 + taker.bps) // 10_000
        return -((-best * (10_000 - taker.bps)) // 10_000)

    def _match(self, taker: NaiveOrder, outcome: Outcome) -> str | None:
        """Match in place; returns 'SELF_TRADE' when STP stopped the taker."""
        limit = self._limit_of(taker)
        for maker in self._opposite_sorted(taker):
            if taker.remaining == 0:
                return None
            assert maker.price is not None
            if not self._acceptable(taker, maker.price, limit):
                return None
            if maker.user == taker.user and taker.stp != "NONE":
                if taker.stp in ("CANCEL_OLDEST", "CANCEL_BOTH"):
                    self.resting.remove(maker)
                    self.closed.add(maker.order_id)
                    outcome.cancels.append((maker.order_id, "SELF_TRADE", maker.remaining))
                    if taker.stp == "CANCEL_OLDEST":
                        continue
                return "SELF_TRADE"
            quantity = min(taker.remaining, maker.remaining)
            outcome.trades.append((maker.order_id, taker.order_id, maker.price, quantity))
            taker.remaining -= quantity
            taker.filled += quantity
            maker.remaining -= quantity
            maker.filled += quantity
            if maker.remaining == 0:
                self.resting.remove(maker)
                self.closed.add(maker.order_id)
        return None

    def _enter(self, taker: NaiveOrder, outcome: Outcome) -> None:
        if taker.tif == "FOK":
            trial = copy.deepcopy(self)
            probe = copy.deepcopy(taker)
            trial._match(probe, Outcome())
            if probe.remaining:
                outcome.cancels.append((taker.order_id, "FOK_NOT_FILLABLE", taker.remaining))
                self.closed.add(taker.order_id)
                return
        stopped = self._match(taker, outcome)
        if taker.remaining == 0:
            self.closed.add(taker.order_id)
            return
        if stopped:
            reason = stopped
        elif taker.is_market:
            reason = "SLIPPAGE" if self._opposite_sorted(taker) else "NO_LIQUIDITY"
        elif taker.tif == "IOC":
            reason = "IOC_REMAINDER"
        else:
            self.resting.append(taker)
            return
        outcome.cancels.append((taker.order_id, reason, taker.remaining))
        self.closed.add(taker.order_id)

    def place(self, order: NaiveOrder) -> Outcome:
        outcome = Outcome()
        if order.post_only:
            opposite = self._opposite_sorted(order)
            assert order.price is not None
            if opposite and self._acceptable(order, opposite[0].price or 0, order.price):
                outcome.rejected = "POST_ONLY_WOULD_TAKE"
                self.closed.add(order.order_id)
                return outcome
        self.seq += 1
        order.seq = self.seq
        order.remaining = order.quantity
        self._enter(order, outcome)
        return outcome

    def cancel(self, order_id: str) -> Outcome:
        outcome = Outcome()
        order = self.find(order_id)
        if order is None:
            outcome.rejected = "ORDER_CLOSED" if order_id in self.closed else "UNKNOWN_ORDER"
            return outcome
        self.resting.remove(order)
        self.closed.add(order_id)
        outcome.cancels.append((order_id, "USER_REQUESTED", order.remaining))
        return outcome

    def amend(self, order_id: str, quantity: int | None, price: int | None) -> Outcome:
        outcome = Outcome()
        order = self.find(order_id)
        if order is None:
            outcome.rejected = "ORDER_CLOSED" if order_id in self.closed else "UNKNOWN_ORDER"
            return outcome
        if quantity is None and price is None:
            outcome.rejected = "NOTHING_TO_AMEND"
            return outcome
        if quantity is not None and quantity <= order.filled:
            outcome.rejected = "QUANTITY_AT_OR_BELOW_FILLED"
            return outcome
        new_total = order.quantity if quantity is None else quantity
        new_price = order.price if price is None else price
        if order.post_only and new_price != order.price:
            opposite = self._opposite_sorted(order)
            assert new_price is not None
            if opposite and self._acceptable(order, opposite[0].price or 0, new_price):
                outcome.rejected = "POST_ONLY_WOULD_TAKE"
                return outcome
        if new_price == order.price and new_total <= order.quantity:
            order.remaining = new_total - order.filled
            order.quantity = new_total
            return outcome
        self.resting.remove(order)
        order.price = new_price
        order.quantity = new_total
        order.remaining = new_total - order.filled
        self.seq += 1
        order.seq = self.seq
        self._enter(order, outcome)
        return outcome

    def levels(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        def aggregate(is_buy: bool) -> list[tuple[int, int, int]]:
            totals: dict[int, list[int]] = {}
            for order in self.resting:
                if order.is_buy == is_buy:
                    assert order.price is not None
                    entry = totals.setdefault(order.price, [0, 0])
                    entry[0] += order.remaining
                    entry[1] += 1
            prices = sorted(totals, reverse=is_buy)
            return [(price, totals[price][0], totals[price][1]) for price in prices]

        return aggregate(True), aggregate(False)
