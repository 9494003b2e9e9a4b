"""Which fee a trade shows whom, for every transport: a party sees the fee it paid
(accounts on); anyone else, and every public feed, sees none."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from server.identity.context import current_principal


def fee_of_party(trade: Any, user_id: str | None) -> Decimal | None:
    """The fee `user_id` paid on `trade` when it is one of its two parties (both fees when
    it is both); None for anyone else, or a trade without fees recorded."""
    buyer_fee = getattr(trade, "buyer_fee", None)
    seller_fee = getattr(trade, "seller_fee", None)
    if user_id is None or buyer_fee is None or seller_fee is None:
        return None
    taker_buys = trade.taker_side == "BUY"
    buyer = trade.taker_user_id if taker_buys else trade.maker_user_id
    seller = trade.maker_user_id if taker_buys else trade.taker_user_id
    fees = [fee for party, fee in ((buyer, buyer_fee), (seller, seller_fee)) if party == user_id]
    return sum(fees, Decimal(0)) if fees else None


def trade_viewer() -> str | None:
    """Whose fees a trade listing shows: the caller's account (None when keyless, as on
    public market data: no fees)."""
    principal = current_principal()
    return None if principal is None else principal.user_id
