"""Calling as the account each request names: per-account API keys, issued on first use
with an admin key, attached by client interceptors.

For tools that act for many accounts at once against a venue whose admin key they hold:
the load generators of `bench/`, and the tests' harness. A channel with
`account_keys_interceptors` attaches, per call, the key of the request's `user_id` (or its
order's), issued through AdminService with the admin key on first use (scope trade); a
request that names no account (or one no key can be issued to) gets the tool's own key,
scopes admin and trade (it reads every account, cancels any order and trades for its own).
AdminService calls carry the admin key. A call that already carries `authorization` keeps
it.

With `funding` (asset -> decimal amount), each account is funded when its key is issued:
an AdminService Deposit of each asset, with a transfer id derived from the account and the
asset (so a second tool, or a restart, deposits nothing twice). On a venue with accounts
off (FAILED_PRECONDITION) funding stops quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import grpc
import grpc.aio

from clients.generated.exchange.v1 import admin_service_pb2, admin_service_pb2_grpc

ADMIN_METHOD_PREFIX = "/exchange.v1.AdminService/"
# The account of the key that calls naming no account carry.
TOOL_ACCOUNT = "harness-admin"


SCOPE_ADMIN_AND_TRADE = (admin_service_pb2.SCOPE_ADMIN, admin_service_pb2.SCOPE_TRADE)


def bearer(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def account_of(request: Any) -> str:
    """The account a request names: its user_id, or its order's (StreamPlaceOrders)."""
    user_id = getattr(request, "user_id", None)
    if isinstance(user_id, str):
        return user_id
    order = getattr(request, "order", None)
    return account_of(order) if order is not None else ""


class AccountKeys:
    """Trade keys of test accounts, issued on first use through AdminService."""

    def __init__(
        self, target: str, admin_key: str, funding: Mapping[str, str] | None = None
    ) -> None:
        self.admin_key = admin_key
        self._funding = dict(funding or {})
        self._target = target
        self._channel: grpc.aio.Channel | None = None
        self._issued: dict[str, asyncio.Future[str]] = {}

    def _admin(self) -> Any:  # the generated stub's sync-typed methods, awaited on aio
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._target)
        return admin_service_pb2_grpc.AdminServiceStub(self._channel)

    async def key_for(self, user_id: str) -> str:
        """The account's trade key; the tool's admin-and-trade key for no account, or
        for one the service would refuse to issue a key to (the call is then refused for
        its user_id)."""
        if not user_id:
            return await self._key(TOOL_ACCOUNT, SCOPE_ADMIN_AND_TRADE)
        return await self._key(user_id, (admin_service_pb2.SCOPE_TRADE,))

    async def _key(self, user_id: str, scopes: tuple[int, ...]) -> str:
        if user_id not in self._issued:  # one issue per account, however many callers
            self._issued[user_id] = asyncio.ensure_future(self._issue(user_id, scopes))
        return await asyncio.shield(self._issued[user_id])

    async def _issue(self, user_id: str, scopes: tuple[int, ...]) -> str:
        try:
            issued = await self._admin().IssueApiKey(
                admin_service_pb2.IssueApiKeyRequest(user_id=user_id, scopes=list(scopes)),  # type: ignore[arg-type]
                metadata=bearer(self.admin_key),
                timeout=30,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                del self._issued[user_id]
                raise
            return await self.key_for("")
        await self.fund(user_id)
        return str(issued.api_key)

    async def fund(self, user_id: str) -> None:
        """Deposit the funding into `user_id`'s account (once per account and asset)."""
        for asset, amount in sorted(self._funding.items()):
            try:
                await self._admin().Deposit(
                    admin_service_pb2.DepositRequest(
                        user_id=user_id,
                        asset=asset,
                        amount=amount,
                        transfer_id=_funding_transfer_id(asset, user_id),
                    ),
                    metadata=bearer(self.admin_key),
                    timeout=60,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                self._funding = {}  # accounts are off on this venue
                return

    async def prepare(self, user_ids: Iterable[str]) -> None:
        """Issue the accounts' keys (and the tool's own) now, concurrently, before anything
        is measured."""
        await asyncio.gather(*(self.key_for(user_id) for user_id in ("", *user_ids)))

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def _funding_transfer_id(asset: str, user_id: str) -> str:
    """One transfer id per account and asset, whatever the account's id holds."""
    digest = hashlib.sha256(f"{asset}\x1f{user_id}".encode()).hexdigest()[:32]
    return f"funding-{digest}"


def _has_authorization(details: grpc.aio.ClientCallDetails) -> bool:
    return any(key == "authorization" for key, _ in details.metadata or ())


def _with_key(details: grpc.aio.ClientCallDetails, key: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add("authorization", f"Bearer {key}")
    return details._replace(metadata=metadata)  # type: ignore[attr-defined,no-any-return]


async def _peeked(requests: Any) -> tuple[Any, Any]:
    """(first request or None, an iterator of all of them) of a request stream. A call
    written to (`call.write`) cannot be peeked before it starts: it names its key."""
    if requests is None:
        return None, None
    if hasattr(requests, "__aiter__"):
        iterator = requests.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            return None, requests

        async def chained() -> AsyncIterator[Any]:
            yield first
            async for request in iterator:
                yield request

        return first, chained()
    listed = list(requests)
    return (listed[0] if listed else None), iter(listed)


class _KeyAttacher:
    def __init__(self, keys: AccountKeys) -> None:
        self._keys = keys

    async def _details(
        self, details: grpc.aio.ClientCallDetails, request: Any
    ) -> grpc.aio.ClientCallDetails:
        if _has_authorization(details):
            return details
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        if method.startswith(ADMIN_METHOD_PREFIX):
            return _with_key(details, self._keys.admin_key)
        account = account_of(request) if request is not None else ""
        return _with_key(details, await self._keys.key_for(account))


# One class per call kind: a grpc.aio channel files each interceptor under its first kind.
class _UnaryUnary(_KeyAttacher, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details, request), request)


class _UnaryStream(_KeyAttacher, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details, request), request)


class _StreamUnary(_KeyAttacher, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        if _has_authorization(details):  # not peeked: a call written to must name its key
            return await continuation(details, request_iterator)
        first, requests = await _peeked(request_iterator)
        return await continuation(await self._details(details, first), requests)


class _StreamStream(_KeyAttacher, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        if _has_authorization(details):  # not peeked: a call written to must name its key
            return await continuation(details, request_iterator)
        first, requests = await _peeked(request_iterator)
        return await continuation(await self._details(details, first), requests)


def account_keys_interceptors(keys: AccountKeys) -> list[Any]:
    return [kind(keys) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def keyed_channel(target: str, keys: AccountKeys) -> grpc.aio.Channel:
    """A channel whose calls carry the key of the account each request names."""
    return grpc.aio.insecure_channel(target, interceptors=account_keys_interceptors(keys))


@contextlib.asynccontextmanager
async def account_channel(
    target: str, admin_key: str, funding: Mapping[str, str] | None = None
) -> AsyncIterator[grpc.aio.Channel]:
    """A keyed channel to an exchange started with `admin_key` (its accounts funded with
    `funding`), closed on the way out."""
    keys = AccountKeys(target, admin_key, funding)
    channel = keyed_channel(target, keys)
    try:
        yield channel
    finally:
        await channel.close()
        await keys.close()
