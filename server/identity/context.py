"""Who is calling: the principal the auth interceptor found for the call being served.

The interceptor sets it for the whole call (``server.identity.interceptor``); servicers and
the rate limiter read it with ``current_principal()``. None when the call needs no key
(health, reflection, public market data) or outside a call.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from server.identity.scopes import Scope, granted


@dataclass(frozen=True)
class Principal:
    key_id: str
    user_id: str
    scopes: frozenset[Scope]

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    def holds(self, scope: Scope) -> bool:
        return scope in granted(self.scopes)


_current: ContextVar[Principal | None] = ContextVar("current_principal", default=None)


def current_principal() -> Principal | None:
    return _current.get()


def set_principal(principal: Principal | None) -> None:
    """Set for the current call's task (each RPC runs in its own task and context)."""
    _current.set(principal)
