"""Balances: what each account holds of each asset, what open orders hold, and the money
side of every trade.

With accounts on (`EnableAccounts`), every account has per asset an `available` and a
`held` balance, integers in the asset's smallest unit. The rules, which the engine applies
in the same step as the order change they belong to:

- A limit or stop-limit order holds, on acceptance, all it can still cost: a SELL its
  remaining quantity in base; a BUY, per remaining lot, the lot's price in quote plus the
  highest fee the instrument charges on it, rounded up per lot (`InstrumentMoney.
  buy_hold_per_lot`). Rounding per lot makes the hold cover any split into fills, as each
  fill's fee is rounded up on its own: ceil(q*x) <= q*ceil(x).
- So what an open order holds is always `hold_of(order)`, a function of its side, price
  and remaining quantity: a fill moves exactly `quantity` lots' worth out of held (the
  price improvement and the unused fee margin back to available), an amend re-computes
  it, and a cancel, expiry or IOC remainder releases all of it.
- Market and stop-market orders hold nothing; each fill is paid from available, and a
  fill stops at the last lot the taker can pay (`affordable_lots`).
- Fees are in quote, rounded up to its unit (in favour of the venue), and credited to
  `FEE_ACCOUNT`. Per asset, the sum of every account's available + held equals deposits
  minus withdrawals, always.
"""

from __future__ import annotations

from decimal import Decimal

from domain import reasons
from domain.assets import BPS, DEFAULT_PRECISION, FEE_ACCOUNT
from domain.errors import InvalidField
from domain.events import AssetAdded, Event, FundsHeld, FundsReleased, TradeSettled
from domain.instruments import Instrument
from domain.orders import Order


class Balance:
    """One account's balance of one asset, in units. A plain class with `__slots__` (a
    native class in the compiled build, like `Order`): every hold, release and fill
    changes one."""

    __slots__ = ("available", "held")

    def __init__(self, available: int = 0, held: int = 0) -> None:
        self.available = available
        self.held = held

    def __repr__(self) -> str:
        return f"Balance(available={self.available}, held={self.held})"


class InstrumentMoney:
    """An instrument's conversions into money: what a lot at a price costs in quote units,
    what a lot is in base units, and its fees."""

    __slots__ = (
        "base",
        "base_per_lot",
        "maker_bps",
        "max_bps",
        "quote",
        "quote_per_tick_lot",
        "taker_bps",
    )

    def __init__(self, instrument: Instrument, precision_of_asset: dict[str, int]) -> None:
        """`instrument` must name its assets (see `Instrument.with_assets`); InvalidField
        when a tick x lot or a lot is finer than the quote or base asset's unit."""
        assert instrument.base is not None and instrument.quote is not None
        self.base = instrument.base
        self.quote = instrument.quote
        self.quote_per_tick_lot = _whole_units(
            instrument.tick_size * instrument.lot_size,
            precision_of_asset[self.quote],
            "tick_size",
            f"tick x lot of {instrument.symbol} in {self.quote}",
        )
        self.base_per_lot = _whole_units(
            instrument.lot_size,
            precision_of_asset[self.base],
            "lot_size",
            f"lot of {instrument.symbol} in {self.base}",
        )
        self.maker_bps = instrument.maker_fee_bps
        self.taker_bps = instrument.taker_fee_bps
        self.max_bps = max(self.maker_bps, self.taker_bps)

    def buy_hold_per_lot(self, price: int) -> int:
        """What one lot bought at `price` ticks can cost: notional + the highest fee,
        rounded up."""
        notional = price * self.quote_per_tick_lot
        return notional + fee_of(notional, self.max_bps)

    def hold_of(self, order: Order) -> int:
        """What an open order holds (in quote for a buy, base for a sell)."""
        price = order.price
        if price is None:  # market and stop-market orders never have one
            return 0
        if order.is_buy:
            return order.remaining * self.buy_hold_per_lot(price)
        return order.remaining * self.base_per_lot

    def hold_asset(self, is_buy: bool) -> str:
        return self.quote if is_buy else self.base


def _whole_units(step: Decimal, precision: int, field: str, what: str) -> int:
    units = step.scaleb(precision)
    if units != units.to_integral_value():
        raise InvalidField(field, reasons.ASSET_PRECISION_TOO_FINE, f"{what} is {units} units")
    return int(units)


def fee_of(notional: int, bps: int) -> int:
    """A fee in quote units: `bps` of the notional, rounded up."""
    return -(-notional * bps // BPS)


def _cost(lots: int, per_lot: int, bps: int) -> int:
    """What a market buy of `lots` at `per_lot` notional each pays, fee included."""
    notional = lots * per_lot
    return notional + fee_of(notional, bps)


class Accounts:
    """Every balance, the assets and their precision, the transfer ids seen (deposits and
    withdrawals are idempotent by id) and each instrument's money terms."""

    __slots__ = ("balances", "money_by_symbol", "precision_of_asset", "transfer_ids")

    def __init__(self, precision_of_asset: dict[str, int]) -> None:
        self.balances: dict[tuple[str, str], Balance] = {}
        # The engine's table of assets (shared, so assets added later are seen here).
        self.precision_of_asset = precision_of_asset
        self.transfer_ids: set[str] = set()
        self.money_by_symbol: dict[str, InstrumentMoney] = {}

    def balance(self, user_id: str, asset: str) -> Balance:
        key = (user_id, asset)
        balance = self.balances.get(key)
        if balance is None:
            balance = self.balances[key] = Balance()
        return balance

    def meet_asset(self, asset: str, events: list[Event]) -> None:
        """Add an asset named without a configured precision, with the default one."""
        if asset not in self.precision_of_asset:
            self.precision_of_asset[asset] = DEFAULT_PRECISION
            events.append(AssetAdded(asset, DEFAULT_PRECISION))

    # ------------------------------------------------------------------ holds
    # A new order's hold is taken inline by `domain.order_lifecycle.place` (the hot path);
    # the order then keeps its balance as `order.funds`.

    def can_hold_more(
        self, money: InstrumentMoney, order: Order, new_price: int | None, new_remaining: int
    ) -> bool:
        """Whether the account can cover what `order` would hold at a new price and
        remaining quantity, beyond what it holds now."""
        funds = order.funds
        if funds is None or new_price is None:
            return True
        per_lot = money.buy_hold_per_lot(new_price) if order.is_buy else money.base_per_lot
        return new_remaining * per_lot - money.hold_of(order) <= funds.available

    def adjust(
        self, money: InstrumentMoney, order: Order, before: int, events: list[Event], now: int
    ) -> None:
        """After an amend changed `order` (which held `before`, and whose account could
        cover the difference: `can_hold_more`): hold the difference or release it."""
        funds = order.funds
        if funds is None:
            return
        change = money.hold_of(order) - before
        funds.available -= change
        funds.held += change
        asset = money.quote if order.is_buy else money.base
        if change > 0:
            events.append(FundsHeld(order.order_id, order.user_id, asset, change, now))
        elif change < 0:
            events.append(FundsReleased(order.order_id, order.user_id, asset, -change, now))

    def release_all(
        self, money: InstrumentMoney, order: Order, events: list[Event], now: int
    ) -> None:
        """Release everything an order that closes (cancel, expiry, remainder) holds;
        `order.remaining` is still the quantity it closes with."""
        funds = order.funds
        if funds is None:
            return
        if order.is_buy:
            amount = order.remaining * money.buy_hold_per_lot(order.price)  # type: ignore[arg-type]
            asset = money.quote
        else:
            amount = order.remaining * money.base_per_lot
            asset = money.base
        if amount:
            funds.held -= amount
            funds.available += amount
            events.append(FundsReleased(order.order_id, order.user_id, asset, amount, now))

    # ------------------------------------------------------------------ trades

    def affordable_lots(self, money: InstrumentMoney, taker: Order, price: int, lots: int) -> int:
        """How many of `lots` at `price` a taker that holds nothing (a market order) can
        pay from available: base for a sell, notional + taker fee for a buy."""
        if not taker.is_buy:
            balance = self.balances.get((taker.user_id, money.base))
            have = 0 if balance is None else balance.available // money.base_per_lot
            return lots if have >= lots else have
        balance = self.balances.get((taker.user_id, money.quote))
        available = 0 if balance is None else balance.available
        per_lot = price * money.quote_per_tick_lot
        bps = money.taker_bps
        if _cost(lots, per_lot, bps) <= available:
            return lots
        # The largest q whose notional + fee fits: start from the estimate without the
        # fee's rounding, which is at most one lot off, and step.
        q = min(lots, available * BPS // (per_lot * (BPS + bps))) if per_lot else lots
        while q < lots and _cost(q + 1, per_lot, bps) <= available:
            q += 1
        while q and _cost(q, per_lot, bps) > available:
            q -= 1
        return q

    def settle(
        self,
        money: InstrumentMoney,
        trade_id: str,
        symbol: str,
        maker: Order,
        taker: Order,
        price: int,
        lots: int,
        events: list[Event],
        now: int,
    ) -> None:
        """Move a trade's money: base from seller to buyer, quote from buyer to seller,
        the two fees to the fee account (see `TradeSettled`). Each order pays out of its
        hold (`funds`) when it has one, else (a market order) out of available."""
        if taker.is_buy:
            buyer, seller, buyer_bps, seller_bps = taker, maker, money.taker_bps, money.maker_bps
        else:
            buyer, seller, buyer_bps, seller_bps = maker, taker, money.maker_bps, money.taker_bps
        base, quote = money.base, money.quote
        balances = self.balances
        buyer_id = buyer.user_id
        seller_id = seller.user_id
        base_amount = lots * money.base_per_lot
        notional = price * lots * money.quote_per_tick_lot
        buyer_fee = fee_of(notional, buyer_bps)
        seller_fee = fee_of(notional, seller_bps)
        # Buyer, in quote: the fill's share of its hold leaves held (what exceeds the
        # payment, a better price or an unused fee margin, returns to available).
        paying = buyer.funds
        if paying is None:
            paying = balances.get((buyer_id, quote)) or self.balance(buyer_id, quote)
            buyer_held_used = 0
        else:
            buyer_held_used = lots * money.buy_hold_per_lot(buyer.price)  # type: ignore[arg-type]
            paying.held -= buyer_held_used
        paying.available += buyer_held_used - notional - buyer_fee
        (balances.get((buyer_id, base)) or self.balance(buyer_id, base)).available += base_amount
        # Seller, in base then quote.
        delivering = seller.funds
        if delivering is None:
            delivering = balances.get((seller_id, base)) or self.balance(seller_id, base)
            seller_held_used = 0
        else:
            seller_held_used = base_amount
            delivering.held -= base_amount
        delivering.available += seller_held_used - base_amount
        (balances.get((seller_id, quote)) or self.balance(seller_id, quote)).available += (
            notional - seller_fee
        )
        fees = buyer_fee + seller_fee
        if fees:
            self.balance(FEE_ACCOUNT, quote).available += fees
        events.append(
            TradeSettled(
                trade_id,
                symbol,
                base,
                quote,
                buyer_id,
                seller_id,
                buyer.order_id,
                seller.order_id,
                base_amount,
                notional,
                buyer_fee,
                seller_fee,
                buyer_held_used,
                seller_held_used,
                now,
            )
        )
