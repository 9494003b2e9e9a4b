"""Redis key layout and value encodings of the book views (builder and readers share it).

Under a prefix (default `exchange:`; tests use their own):
- `book:<instrument>:bids` / `:asks`: sorted sets, one member per level,
  `"<price>|<quantity>|<order_count>"`, scored by the price, so one ZRANGE returns whole
  levels in price order and a level is replaced by removing its score.
- `book:<instrument>:meta`: hash with `sequence`, `last_price`, `position`.
- `trades:<instrument>`: list of recent trades (JSON), newest first, capped.
- `instruments`: set of instruments seen.
- `balances:<user_id>`: hash, asset -> `"<available>|<held>|<updated_at>|<position>"`.
- `balance-users`: set of the users that have a balance hash.
- `instrument-status`: hash, instrument -> `"<status>|<updated_at>|<position>"` (an
  instrument not there is TRADING).
- `checkpoint:<builder>`: the builder's log position token.
- `views-epoch`: a random token set when the views are (re)built from nothing and never
  written by a batch. Redis keeps nothing on disk here: after it restarts the key is gone,
  which is how the builder and the readers know the views were lost.
- `views-rebuilding`: the log position a rebuild is bringing the views to; while it exists
  (or while the epoch is missing) the views are not ready and readers refuse to serve them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import orjson

from projections.views import BalanceView, InstrumentStatusView, TradeView
from server.log_contract.layout import format_time, parse_time

DEFAULT_PREFIX = "exchange:"


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = DEFAULT_PREFIX

    def side(self, instrument: str, side: str) -> str:
        return f"{self.prefix}book:{instrument}:{'bids' if side == 'BUY' else 'asks'}"

    def meta(self, instrument: str) -> str:
        return f"{self.prefix}book:{instrument}:meta"

    def trades(self, instrument: str) -> str:
        return f"{self.prefix}trades:{instrument}"

    @property
    def instruments(self) -> str:
        return f"{self.prefix}instruments"

    def balances(self, user_id: str) -> str:
        return f"{self.prefix}balances:{user_id}"

    @property
    def balance_users(self) -> str:
        return f"{self.prefix}balance-users"

    @property
    def instrument_statuses(self) -> str:
        return f"{self.prefix}instrument-status"

    @property
    def log_identity(self) -> str:
        """Which log (projection_log_identity.log_id) these views were built from."""
        return f"{self.prefix}log-id"

    @property
    def epoch(self) -> str:
        """Present exactly while Redis holds views this prefix's builder wrote."""
        return f"{self.prefix}views-epoch"

    @property
    def rebuilding(self) -> str:
        """The position token a rebuild is replaying the log up to (absent: not rebuilding)."""
        return f"{self.prefix}views-rebuilding"

    def checkpoint(self, builder: str) -> str:
        return f"{self.prefix}checkpoint:{builder}"

    @property
    def pattern(self) -> str:
        """Matches every key of this layout (for rebuild)."""
        return f"{self.prefix}*"


def level_member(price: Decimal, quantity: Decimal, order_count: int) -> str:
    return f"{price}|{quantity}|{order_count}"


def parse_level_member(member: bytes | str) -> tuple[Decimal, Decimal, int]:
    text = member.decode() if isinstance(member, bytes) else member
    price, quantity, count = text.split("|")
    return Decimal(price), Decimal(quantity), int(count)


def balance_value(view: BalanceView) -> str:
    return f"{view.available}|{view.held}|{format_time(view.updated_at)}|{view.position}"


def parse_balance_value(user_id: str, asset: str, value: bytes | str) -> BalanceView:
    text = value.decode() if isinstance(value, bytes) else value
    available, held, updated_at, position = text.split("|")
    return BalanceView(
        user_id, asset, Decimal(available), Decimal(held), parse_time(updated_at), position
    )


def status_value(view: InstrumentStatusView) -> str:
    return f"{view.status}|{format_time(view.updated_at)}|{view.position}"


def parse_status_value(instrument: str, value: bytes | str) -> InstrumentStatusView:
    text = value.decode() if isinstance(value, bytes) else value
    status, updated_at, position = text.split("|")
    return InstrumentStatusView(instrument, status, parse_time(updated_at), position)


def text_of(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def trade_to_json(trade: TradeView) -> bytes:
    return orjson.dumps(
        {
            "trade_id": trade.trade_id,
            "instrument": trade.instrument,
            "price": str(trade.price),
            "quantity": str(trade.quantity),
            "maker_order_id": trade.maker_order_id,
            "taker_order_id": trade.taker_order_id,
            "taker_side": trade.taker_side,
            "executed_at": None if trade.executed_at is None else format_time(trade.executed_at),
            "maker_user_id": trade.maker_user_id,
            "taker_user_id": trade.taker_user_id,
            "position": trade.position,
        }
    )


def trade_from_json(raw: bytes | str) -> TradeView:
    data = orjson.loads(raw)
    return TradeView(
        trade_id=data["trade_id"],
        instrument=data["instrument"],
        price=Decimal(data["price"]),
        quantity=Decimal(data["quantity"]),
        maker_order_id=data["maker_order_id"],
        taker_order_id=data["taker_order_id"],
        taker_side=data["taker_side"],
        executed_at=None if data["executed_at"] is None else parse_time(data["executed_at"]),
        maker_user_id=data["maker_user_id"],
        taker_user_id=data["taker_user_id"],
        position=data["position"],
    )
