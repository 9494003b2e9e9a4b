"""The reference book behind the replayer's interface: JSON lines in, JSON lines out.

`python -m bench.reference_replay < commands.jsonl`: reads the replayer's command lines
(instrument, place LIMIT/MARKET, cancel; see `domain.codec`), turns decimal text into
ticks and lots with `Decimal`, runs them through `bench.reference_book.ReferenceBook`, and
writes one JSON object per line: an "accepted" line per order (its terms, decimals as
text), a "trade" line per fill and a "cancelled" line per cancel. It is the yardstick
of the replayer's CPU in `bench.side_by_side`: the same parsing and writing around a book
that builds no events.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from decimal import Decimal
from typing import BinaryIO

import orjson

from bench.reference_book import ReferenceBook


def _steps(text: str, step: Decimal) -> int:
    steps = Decimal(text) / step
    if steps != steps.to_integral_value():
        raise ValueError(f"{text} is not a multiple of {step}")
    return int(steps)


def _formatter(step: Decimal) -> Callable[[int], str]:
    places = -int(step.as_tuple().exponent)
    scale = 10**places
    return lambda value: f"{value // scale}.{value % scale:0{places}d}"


def replay(lines: BinaryIO, output: BinaryIO) -> None:
    book = ReferenceBook()
    dumps, write = orjson.dumps, output.write
    tick = lot = Decimal(1)
    price_text = quantity_text = _formatter(tick)
    for raw in lines:
        data = orjson.loads(raw)
        op = data["op"]
        if op == "cancel":
            if book.cancel(data["order_id"]):
                write(dumps({"type": "cancelled", "order_id": data["order_id"]}) + b"\n")
            continue
        if op == "instrument":
            tick, lot = Decimal(data["tick_size"]), Decimal(data["lot_size"])
            price_text, quantity_text = _formatter(tick), _formatter(lot)
            continue
        order_id = data["order_id"]
        is_buy = data["side"] == "BUY"
        quantity = _steps(data["quantity"], lot)
        price = data.get("price")
        accepted = {
            "type": "accepted",
            "order_id": order_id,
            "user_id": data["user_id"],
            "instrument": data["instrument"],
            "side": data["side"],
            "order_type": data["type"],
            "price": price,
            "quantity": quantity_text(quantity),
        }
        write(dumps(accepted) + b"\n")
        if data["type"] == "MARKET":
            fills = book.market(order_id, is_buy, quantity, data["max_slippage_bps"])
        else:
            fills = book.limit(order_id, is_buy, _steps(price, tick), quantity)
        for maker_id, taker_id, ticks, lots in fills:
            trade = {
                "type": "trade",
                "maker_order_id": maker_id,
                "taker_order_id": taker_id,
                "price": price_text(ticks),
                "quantity": quantity_text(lots),
            }
            write(dumps(trade) + b"\n")
    output.flush()


if __name__ == "__main__":
    replay(sys.stdin.buffer, sys.stdout.buffer)
