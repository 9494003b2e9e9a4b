"""The door of every HTTP operation: the key (`Authorization: Bearer <key>`, the scope
table of the RPC the operation stands for), the rate limit for commands, and refusals and
failures turned into answers (``server.http.errors``). The same rules as gRPC's door, from
the same code: ``server.identity.callers`` and ``server.limits.keying``. Each answer is
counted by operation and status (``exchange_http_requests_total``)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import RateLimited
from server.http.errors import failure_response
from server.http.operations import Handler, Operation
from server.identity.callers import authorize
from server.identity.context import set_principal
from server.identity.keyring import KeyRing
from server.limits.keying import charge
from server.limits.refusals import rate_limited_message
from server.limits.token_bucket import RateLimiter
from server.observability import metrics


class Door:
    def __init__(self, ring: KeyRing, public_market_data: bool, rate_limiter: RateLimiter) -> None:
        self._ring = ring
        self._public_market_data = public_market_data
        self._rate_limiter = rate_limiter

    def _let_in(self, operation: Operation, request: Request) -> None:
        """Set the caller for this request (its task), or refuse it."""
        principal = authorize(
            self._ring,
            operation.rpc,
            request.headers.getlist("authorization"),
            self._public_market_data,
        )
        set_principal(principal)
        if operation.charged:
            # Commands always have a principal (no command is public).
            key = principal.key_id if principal is not None else "anonymous"
            retry_after_s = charge(self._rate_limiter, key)
            if retry_after_s > 0:
                raise RateLimited(rate_limited_message(retry_after_s), retry_after_s)

    def guarded(self, operation: Operation) -> Handler:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                self._let_in(operation, request)
                response = await operation.handler(request)
            except Exception as error:
                response = failure_response(error, request.url.path, operation.field_names)
            metrics.record_http_request(
                operation.operation_id, response.status_code, time.perf_counter() - started
            )
            return response

        return endpoint

    def routes(self, operations: list[Operation]) -> list[Route]:
        """One Starlette route per path, dispatching on the method (so an unknown method on
        a known path is 405 with `Allow`)."""
        by_path: dict[str, list[Operation]] = {}
        for operation in operations:
            by_path.setdefault(operation.path, []).append(operation)
        routes = []
        for path, on_path in by_path.items():
            handlers = {op.method: self.guarded(op) for op in on_path}
            routes.append(Route(path, _dispatch(handlers), methods=list(handlers)))
        return routes


def _dispatch(handlers: dict[str, Handler]) -> Handler:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint
