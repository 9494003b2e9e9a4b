"""The door's identity check: every call shows an API key, except health, reflection and
(with PUBLIC_MARKET_DATA=1) public market data.

`authorization: Bearer <key>` is read from the call's metadata and looked up in the key
ring; the principal is set for the call (``server.identity.context``) before the servicer
runs. No key, or an unknown, revoked or malformed one: UNAUTHENTICATED. A key without the
method's scope (``server.identity.scopes``): PERMISSION_DENIED. Nothing is read or
appended for a refused call.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Sequence
from typing import Any

from server.errors import PermissionDenied, Refused, Unauthenticated
from server.identity.context import Principal, set_principal
from server.identity.keyring import KeyRing
from server.identity.scopes import may_call, needs_no_key, required_scope
from server.observability import metrics
from server.observability.handler_wrapping import Behavior, HandlerWrappingInterceptor
from server.servicers.status import abort_refused

AUTHORIZATION = "authorization"
BEARER = "bearer "


def presented_key(metadata: Sequence[Any] | None) -> str:
    """The key text of a call's `authorization: Bearer <key>` metadata."""
    values = [value for key, value in metadata or () if key == AUTHORIZATION]
    if not values:
        raise Unauthenticated("an API key is required (authorization: Bearer <key>)")
    if len(values) > 1:
        raise Unauthenticated("more than one authorization header")
    value = values[0]
    if isinstance(value, bytes):  # only a -bin key carries bytes; be safe all the same
        value = value.decode("utf-8", "replace")
    if not value[: len(BEARER)].lower() == BEARER:
        raise Unauthenticated("authorization must be 'Bearer <key>'")
    return str(value[len(BEARER) :].strip())


class AuthInterceptor(HandlerWrappingInterceptor):
    def __init__(self, ring: KeyRing, public_market_data: bool = False) -> None:
        super().__init__()
        self._ring = ring
        self._public_market_data = public_market_data

    def _principal(self, method: str, context: Any) -> Principal | None:
        """The caller, when the method needs one and the key may call it; else Refused."""
        if needs_no_key(method, self._public_market_data):
            metrics.record_authentication("public")
            return None
        try:
            principal = self._ring.authenticate(presented_key(context.invocation_metadata()))
        except Refused:
            metrics.record_authentication("unauthenticated")
            raise
        if not may_call(principal.scopes, method):
            metrics.record_authentication("permission_denied")
            scope = required_scope(method)
            raise PermissionDenied(f"this API key lacks the {scope.value!r} scope")
        metrics.record_authentication("ok")
        return principal

    def wrap_unary(self, method: str, behavior: Behavior) -> Behavior:
        async def handle(request_or_iterator: Any, context: Any) -> Any:
            try:
                principal = self._principal(method, context)
            except Refused as refusal:
                await abort_refused(context, refusal)
            set_principal(principal)
            return await behavior(request_or_iterator, context)

        return handle

    def wrap_stream(self, method: str, behavior: Behavior) -> Behavior:
        if not inspect.isasyncgenfunction(behavior):
            return self.wrap_unary(method, behavior)

        async def stream(request_or_iterator: Any, context: Any) -> AsyncIterator[Any]:
            try:
                principal = self._principal(method, context)
            except Refused as refusal:
                await abort_refused(context, refusal)
            set_principal(principal)
            async for response in behavior(request_or_iterator, context):
                yield response

        return stream
