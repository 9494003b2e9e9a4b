"""The door's identity check for gRPC (its rules: ``server.identity.callers``): every call
shows an API key, except health, reflection and (with PUBLIC_MARKET_DATA=1) public market
data.

`authorization: Bearer <key>` is read from the call's metadata and looked up in the key
ring; the principal is set for the call (``server.identity.context``) before the servicer
runs. No key, or an unknown, revoked or malformed one: UNAUTHENTICATED. A key without the
method's scope (``server.identity.scopes``): PERMISSION_DENIED. Nothing is read or
appended for a refused call.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

from server.errors import Refused
from server.identity.callers import authorize
from server.identity.context import Principal, set_principal
from server.identity.keyring import KeyRing
from server.observability.handler_wrapping import Behavior, HandlerWrappingInterceptor
from server.servicers.status import abort_refused

AUTHORIZATION = "authorization"


class AuthInterceptor(HandlerWrappingInterceptor):
    def __init__(self, ring: KeyRing, public_market_data: bool = False) -> None:
        super().__init__()
        self._ring = ring
        self._public_market_data = public_market_data

    def _principal(self, method: str, context: Any) -> Principal | None:
        """The caller, when the method needs one and the key may call it; else Refused."""
        metadata = context.invocation_metadata() or ()
        values = [value for key, value in metadata if key == AUTHORIZATION]
        return authorize(self._ring, method, values, self._public_market_data)

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
