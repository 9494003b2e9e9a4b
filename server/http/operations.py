"""What an HTTP operation is: its method and path, the RPC it stands for (its scope, and
whether it is public market data), its parameters and bodies. The routes and the OpenAPI
document are both built from one table of these (``server.http.api``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["path", "query", "header"]
    description: str
    kind: Literal["string", "integer", "boolean"] = "string"
    required: bool = False
    choices: tuple[str, ...] = ()  # the values it may take, when it is an enumeration


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    rpc: str  # the exchange.v1 RPC it stands for: the scope table's key
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    body: type[Any] | None = None
    answer: type[Any] | None = None  # the JSON body of a success
    success: int = 200
    # An event stream (text/event-stream) instead of a JSON answer: the events' bodies.
    events: Mapping[str, type[Any]] | None = None
    # Commands spend a token of the key's rate limit.
    charged: bool = False
    # The rules' field names as this operation's request names them.
    field_names: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[int, ...] = (400, 401, 403, 503)
