"""What each RPC needs: a scope, or nothing (health, reflection, public market data).

``read`` covers queries and streams; ``trade`` the commands and implies ``read``; ``admin``
covers AdminService and implies ``read`` (an admin reads every account and cancels any
order, but never places or amends for another: ``server.identity.access``). A method
missing from the table needs ``admin``: a new RPC is closed until someone says otherwise
(and tests/unit/test_identity.py fails for it).
"""

from __future__ import annotations

import enum
import functools
from typing import Final


class Scope(enum.Enum):
    READ = "read"
    TRADE = "trade"
    ADMIN = "admin"


# What holding a scope grants.
IMPLIED: Final[dict[Scope, frozenset[Scope]]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.TRADE: frozenset({Scope.TRADE, Scope.READ}),
    Scope.ADMIN: frozenset({Scope.ADMIN, Scope.READ}),
}


def granted(scopes: frozenset[Scope]) -> frozenset[Scope]:
    return frozenset().union(*(IMPLIED[scope] for scope in scopes))


_COMMANDS: Final = "/exchange.v1.OrderCommandService/"
_QUERIES: Final = "/exchange.v1.OrderQueryService/"
_MARKET_DATA: Final = "/exchange.v1.MarketDataService/"
_DIAGNOSTICS: Final = "/exchange.v1.DiagnosticsService/"
_ADMIN: Final = "/exchange.v1.AdminService/"
_ACCOUNTS: Final = "/exchange.v1.AccountService/"

REQUIRED_SCOPE: Final[dict[str, Scope]] = {
    _COMMANDS + "PlaceOrder": Scope.TRADE,
    _COMMANDS + "CancelOrder": Scope.TRADE,
    _COMMANDS + "AmendOrder": Scope.TRADE,
    _COMMANDS + "CancelAllOrders": Scope.TRADE,
    _COMMANDS + "StreamPlaceOrders": Scope.TRADE,
    _QUERIES + "GetOrder": Scope.READ,
    _QUERIES + "ListOrders": Scope.READ,
    _QUERIES + "GetOrderBook": Scope.READ,
    _QUERIES + "ListTrades": Scope.READ,
    _QUERIES + "ListInstruments": Scope.READ,
    _MARKET_DATA + "StreamTrades": Scope.READ,
    _MARKET_DATA + "StreamOrderBook": Scope.READ,
    _MARKET_DATA + "StreamOrderUpdates": Scope.READ,
    _DIAGNOSTICS + "Ping": Scope.READ,
    _DIAGNOSTICS + "StreamPing": Scope.READ,
    _ADMIN + "IssueApiKey": Scope.ADMIN,
    _ADMIN + "RevokeApiKey": Scope.ADMIN,
    _ADMIN + "ListApiKeys": Scope.ADMIN,
    _ADMIN + "Deposit": Scope.ADMIN,
    _ADMIN + "Withdraw": Scope.ADMIN,
    _ADMIN + "SetInstrumentStatus": Scope.ADMIN,
    _ACCOUNTS + "GetBalances": Scope.READ,
    _ACCOUNTS + "ListLedgerEntries": Scope.READ,
    _ACCOUNTS + "StreamBalanceUpdates": Scope.READ,
    _ACCOUNTS + "Withdraw": Scope.TRADE,
}

# Market data anyone may read when PUBLIC_MARKET_DATA=1.
PUBLIC_MARKET_DATA_METHODS: Final = frozenset(
    {
        _MARKET_DATA + "StreamTrades",
        _MARKET_DATA + "StreamOrderBook",
        _QUERIES + "GetOrderBook",
        _QUERIES + "ListTrades",
        _QUERIES + "ListInstruments",
    }
)

# Never behind a key: load balancers and tools must reach them.
OPEN_SERVICE_PREFIXES: Final = ("/grpc.health.v1.Health/", "/grpc.reflection.")


# Trade methods an admin key may call too: operations cancel any account's order.
ADMIN_MAY_ALSO_CALL: Final = frozenset({_COMMANDS + "CancelOrder"})


def required_scope(method: str) -> Scope:
    """The scope a method needs; ``admin`` for a method the table does not name."""
    return REQUIRED_SCOPE.get(method, Scope.ADMIN)


# Asked on every call: a few scope sets times the methods, so the answers are kept.
@functools.cache
def may_call(scopes: frozenset[Scope], method: str) -> bool:
    """Whether a key holding `scopes` may call `method`."""
    held = granted(scopes)
    return required_scope(method) in held or (Scope.ADMIN in held and method in ADMIN_MAY_ALSO_CALL)


def needs_no_key(method: str, public_market_data: bool) -> bool:
    if method.startswith(OPEN_SERVICE_PREFIXES):
        return True
    return public_market_data and method in PUBLIC_MARKET_DATA_METHODS
