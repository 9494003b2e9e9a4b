"""An account's balances, ledger and live balances as every transport reads them: whose
account (the key's; an admin names any), accounts on, read-your-writes, and amounts at
their asset's precision.

The gRPC AccountService and the HTTP routes both call these and render the read side's
value types (``projections.views``) in their own wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain.assets import unit_of
from projections.live import Subscription
from projections.views import BalanceSnapshot, BalanceView, LedgerEntryView
from server.errors import AccountsDisabled, InvalidArgument
from server.identity.access import readable_account
from server.money_commands import MoneyCommands
from server.order_reads import ReadYourWrites
from server.request_checks import optional_id, page_size_of, require_id


def amount_text(value: Decimal, precision: int | None) -> str:
    """An amount with its asset's precision ("0.00" for USD at 2), whatever scale the view
    holds it at; a plain string, never an exponent."""
    if precision is None:
        return format(value, "f")
    return format(value.quantize(unit_of(precision)), "f")


class AccountReads:
    def __init__(
        self,
        money: MoneyCommands,
        balance_views: Any,
        live_feeds: Any,
        read_your_writes: ReadYourWrites,
    ) -> None:
        self._money = money
        self._views = balance_views
        self._feeds = live_feeds
        self._read_your_writes = read_your_writes

    @property
    def assets(self) -> Mapping[str, int]:
        """The configured assets and their precisions."""
        return self._money.assets

    def text(self, asset: str, value: Decimal) -> str:
        """`value`, an amount of `asset`, at the asset's precision."""
        return amount_text(value, self.assets.get(asset))

    def _require_accounts(self) -> None:
        if not self._money.accounts_enabled:
            raise AccountsDisabled("accounts are disabled on this venue (ACCOUNTS_ENABLED=0)")

    async def balances(
        self, requested_user_id: str = "", min_position: str = "", remaining_s: float | None = None
    ) -> list[BalanceView]:
        """The account's balance in every asset it has had one in, by asset."""
        user_id = readable_account(requested_user_id)
        self._require_accounts()
        await self._read_your_writes.wait(min_position, remaining_s)
        balances: list[BalanceView] = await self._views.balances(user_id)
        return balances

    async def ledger(
        self,
        requested_user_id: str = "",
        asset: str = "",
        page_size: int = 0,
        page_token: str = "",
        min_position: str = "",
        remaining_s: float | None = None,
    ) -> tuple[list[LedgerEntryView], str]:
        """One page of the account's ledger (of one asset, or all), most recent first, and
        the next page's token ("" on the last)."""
        user_id = readable_account(requested_user_id)
        self._require_accounts()
        if asset:
            self._money.known_asset(asset)
        size = page_size_of(page_size)
        await self._read_your_writes.wait(min_position, remaining_s)
        try:
            page: tuple[list[LedgerEntryView], str] = await self._views.ledger(
                user_id, asset or None, size, page_token or None
            )
        except ValueError as error:
            raise InvalidArgument.of("page_token", "MALFORMED", str(error)) from error
        return page

    def balance_feed(
        self, requested_user_id: str = ""
    ) -> Subscription[BalanceSnapshot | BalanceView]:
        """The account's balances now (a snapshot), then each balance after each change."""
        optional_id("user_id", requested_user_id)
        user_id = require_id("user_id", readable_account(requested_user_id))
        self._require_accounts()
        subscription: Subscription[BalanceSnapshot | BalanceView] = self._feeds.subscribe_balances(
            user_id
        )
        return subscription
