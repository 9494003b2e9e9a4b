"""The HTTP tests' helpers: a real HTTP client on a running exchange, keys by account, and
a reader of server-sent events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
from api_keys import bearer
from service_harness import Exchange

from clients.generated.exchange.v1 import admin_service_pb2 as admin
from clients.generated.exchange.v1 import admin_service_pb2_grpc as admin_grpc


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def http_key(exchange: Exchange, user_id: str) -> str:
    """The account's trade key (the harness issues it once)."""
    assert exchange.keys is not None
    return await exchange.keys.key_for(user_id)


async def issue_key(exchange: Exchange, user_id: str, *scopes: int) -> str:
    assert exchange.keys is not None
    async with grpc.aio.insecure_channel(exchange.target) as channel:
        issued = await admin_grpc.AdminServiceStub(channel).IssueApiKey(
            admin.IssueApiKeyRequest(user_id=user_id, scopes=list(scopes)),
            metadata=bearer(exchange.keys.admin_key),
        )
    return str(issued.api_key)


READ = admin.SCOPE_READ


@dataclass(frozen=True)
class Event:
    event: str
    data: Any
    id: str


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """The server-sent events of a streamed response (comments skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                yield Event(
                    fields.get("event", "message"), json.loads(fields["data"]), fields.get("id", "")
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
