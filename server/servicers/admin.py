"""AdminService: issue, revoke and list API keys; deposits, withdrawals and venue controls
(``server.servicers.accounts.AdminMoney``). Admin scope, checked at the door."""

from __future__ import annotations

from typing import Any

import grpc

from clients.generated.exchange.v1 import admin_service_pb2 as pb
from clients.generated.exchange.v1 import admin_service_pb2_grpc as pb_grpc
from server.errors import InvalidArgument
from server.identity.access import caller
from server.identity.admin import ApiKeyAdmin
from server.identity.keyring import KeyEntry
from server.identity.scopes import Scope
from server.servicers.accounts import AdminMoney
from server.servicers.convert import timestamp_of

SCOPE_OF_VALUE = {
    pb.SCOPE_READ: Scope.READ,
    pb.SCOPE_TRADE: Scope.TRADE,
    pb.SCOPE_ADMIN: Scope.ADMIN,
}
VALUE_OF_SCOPE = {scope: value for value, scope in SCOPE_OF_VALUE.items()}


def scopes_of(values: Any) -> list[Scope]:
    unknown = [value for value in values if value not in SCOPE_OF_VALUE]
    if unknown:
        raise InvalidArgument.of("scopes", "UNKNOWN_SCOPE", f"unknown scope value {unknown[0]}")
    return [SCOPE_OF_VALUE[value] for value in values]


def key_info(entry: KeyEntry) -> pb.ApiKeyInfo:
    info = pb.ApiKeyInfo(
        key_id=entry.key_id,
        user_id=entry.user_id,
        scopes=sorted(VALUE_OF_SCOPE[scope] for scope in entry.scopes),
        created_at=timestamp_of(entry.issued_at),
        revoked=entry.revoked,
    )
    last_used = timestamp_of(entry.last_used_at)
    if last_used is not None:
        info.last_used_at.CopyFrom(last_used)
    return info


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, keys: ApiKeyAdmin, money: AdminMoney) -> None:
        self._keys = keys
        self._money = money

    async def Deposit(
        self, request: pb.DepositRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.DepositResponse:
        return await self._money.deposit(request, context)

    async def Withdraw(
        self,
        request: pb.AdminServiceWithdrawRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.AdminServiceWithdrawResponse:
        return await self._money.withdraw(request, context)

    async def SetInstrumentStatus(
        self,
        request: pb.SetInstrumentStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.SetInstrumentStatusResponse:
        return await self._money.set_instrument_status(request, context)

    async def IssueApiKey(
        self, request: pb.IssueApiKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.IssueApiKeyResponse:
        key = await self._keys.issue(caller(), request.user_id, scopes_of(request.scopes))
        return pb.IssueApiKeyResponse(key_id=key.key_id, api_key=key.text)

    async def RevokeApiKey(
        self, request: pb.RevokeApiKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RevokeApiKeyResponse:
        await self._keys.revoke(caller(), request.key_id)
        return pb.RevokeApiKeyResponse()

    async def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListApiKeysResponse:
        entries = self._keys.list(request.user_id)
        return pb.ListApiKeysResponse(keys=[key_info(entry) for entry in entries])
