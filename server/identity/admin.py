"""Issuing, revoking and listing API keys (AdminService's operations, transport-free).

An issued key is appended to ``api-key-<key_id>`` at NO_STREAM and applied to this
server's ring at once, so it works here as soon as the call answers; other servers see it
through their ring's subscription.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from domain.assets import FEE_ACCOUNT
from domain.input_rules import shown
from server.errors import InvalidArgument, Refused
from server.eventstore.port import NO_STREAM, EventStore, NewEvent, WrongExpectedVersion
from server.identity.context import Principal
from server.identity.keyring import KeyEntry, KeyRing
from server.identity.keys import NewKey, new_key, secret_sha256
from server.identity.scopes import Scope
from server.log_contract.layout import api_key_stream
from server.log_contract.mapper import decode, encode
from server.log_contract.records import ApiKeyIssued, ApiKeyRevoked
from server.request_checks import optional_id, require_id


class KeyNotFound(Refused):
    status = "NOT_FOUND"


class KeyAlreadyRevoked(Refused):
    status = "FAILED_PRECONDITION"


def _event(record: ApiKeyIssued | ApiKeyRevoked) -> NewEvent:
    event_type, data, metadata = encode(record)
    return NewEvent(event_type, data, metadata)


class ApiKeyAdmin:
    def __init__(
        self,
        event_store: EventStore,
        ring: KeyRing,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._event_store = event_store
        self._ring = ring
        self._now = now

    async def issue(self, by: Principal, user_id: str, scopes: Iterable[Scope]) -> NewKey:
        require_id("user_id", user_id)
        granted = sorted({scope.value for scope in scopes})
        if not granted:
            raise InvalidArgument.of("scopes", "REQUIRED", "at least one scope is required")
        if user_id == FEE_ACCOUNT and Scope.TRADE.value in granted:
            # The venue's fee account only receives fees: it may be read, never trade.
            raise InvalidArgument.of(
                "user_id", "RESERVED_ACCOUNT", f"{FEE_ACCOUNT} cannot hold a trade key"
            )
        key = new_key()
        record = ApiKeyIssued(
            key_id=key.key_id,
            user_id=user_id,
            scopes=tuple(granted),
            secret_sha256=secret_sha256(key.secret),
            issued_at=self._now(),
            issued_by=by.key_id,
        )
        await self._event_store.append(api_key_stream(key.key_id), [_event(record)], NO_STREAM)
        self._ring.apply(record)
        return key

    async def revoke(self, by: Principal, key_id: str) -> None:
        require_id("key_id", key_id)
        stream = api_key_stream(key_id)
        events = await self._event_store.read_stream(stream)
        if not events:
            raise KeyNotFound(f"no API key {shown(key_id)}")
        if any(isinstance(decode(event), ApiKeyRevoked) for event in events):
            raise KeyAlreadyRevoked(f"API key {shown(key_id)} is already revoked")
        record = ApiKeyRevoked(key_id=key_id, revoked_at=self._now(), revoked_by=by.key_id)
        try:
            await self._event_store.append(stream, [_event(record)], events[-1].version)
        except WrongExpectedVersion:
            # Revoked by someone else in between (the only other record of the stream).
            raise KeyAlreadyRevoked(f"API key {shown(key_id)} is already revoked") from None
        self._ring.apply(record)

    def list(self, user_id: str) -> list[KeyEntry]:
        return self._ring.keys(optional_id("user_id", user_id))
