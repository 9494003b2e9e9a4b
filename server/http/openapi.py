"""The OpenAPI 3.1 document of the HTTP API, generated from the operations table and the
body structs (msgspec's JSON Schema, which is OpenAPI 3.1's), so it cannot drift from the
code; tests/http keep it true against the running server."""

from __future__ import annotations

from typing import Any

import msgspec

from server.http.bodies import ErrorBody
from server.http.operations import Operation, Param

_SCHEMAS = "#/components/schemas/{name}"
_REASONS = {
    200: "OK",
    201: "Created",
    400: "A field is refused: `error.field` and `error.reason` name it",
    401: "No valid API key (`Authorization: Bearer <key>`)",
    403: "The key lacks the scope, or names another account",
    404: "Unknown order (or another account's)",
    409: "The order is closed, or the clientOrderId names another order",
    429: "Over the key's rate limit (see Retry-After) or stream limit",
    503: "A dependency is unavailable now: retry",
    504: "The outcome or the views did not come in time (the request stays written)",
}


def _parameter(param: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": param.kind}
    if param.choices:
        schema["enum"] = list(param.choices)
    return {
        "name": param.name,
        "in": param.where,
        "required": param.required or param.where == "path",
        "description": param.description,
        "schema": schema,
    }


def _json(ref: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


def openapi_document(
    operations: list[Operation], title: str, version: str, description: str
) -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for op in operations:
        types += [t for t in (op.body, op.answer) if t is not None]
        types += list((op.events or {}).values())
    refs, components = msgspec.json.schema_components(types, ref_template=_SCHEMAS)
    ref_of = dict(zip(types, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        responses: dict[str, Any] = {}
        if op.events is not None:
            names = ", ".join(f"`{name}`" for name in op.events)
            responses[str(op.success)] = {
                "description": f"Server-sent events ({names}); each event's data is JSON: "
                + "; ".join(f"`{name}`: {body.__name__}" for name, body in op.events.items()),
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        else:
            assert op.answer is not None
            responses[str(op.success)] = {
                "description": _REASONS[op.success],
                "content": _json(ref_of[op.answer]),
            }
        for status in op.errors:
            responses[str(status)] = {
                "description": _REASONS[status],
                "content": _json(ref_of[ErrorBody]),
            }
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "description": f"Stands for the gRPC `{op.rpc.strip('/')}` (its scope and rules).",
            "parameters": [_parameter(p) for p in op.params],
            "responses": responses,
        }
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": _json(ref_of[op.body])}
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
