"""The OpenAPI document is true of the running server: schemathesis generates requests
from /openapi.json for every operation (valid ones and invalid ones) and sends them over
HTTP to a real exchange (real PostgreSQL and Redis); no answer is a 5xx, and every answer's
status, content type and body are the ones the document gives.

The live feeds (/streams/...) are left out here: an event stream does not end, so it has no
answer to check; tests/service/test_http_api_e2e.py covers them."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from live_exchange import LiveExchange
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# Generated requests per operation and mode (valid, invalid).
EXAMPLES = 40


def _operations(live_exchange: LiveExchange) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{live_exchange.http_url}/openapi.json")
    return [result.ok() for result in schema.exclude(path_regex="^/streams/").get_all_operations()]


# schemathesis's pytest plugin (from_fixture) does not run on this pytest; its strategies
# are driven by hypothesis directly instead, one operation and mode at a time.
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_every_answer_is_documented_and_none_is_a_server_error(
    live_exchange: LiveExchange, mode: schemathesis.GenerationMode
) -> None:
    headers = {"Authorization": f"Bearer {live_exchange.key_for('fuzzer')}"}
    operations = _operations(live_exchange)
    assert len(operations) == 9  # every operation but the three streams
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_exchange.http_url, headers=headers, checks=CHECKS)

        check()


def test_the_document_is_openapi_3_1_and_names_the_seed_calls(live_exchange: LiveExchange) -> None:
    document = httpx.get(f"{live_exchange.http_url}/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]["/orders"]) == {"post", "get", "delete"}
    assert set(document["paths"]["/orders/{orderId}"]) == {"get", "delete", "patch"}
    place = document["components"]["schemas"]["PlaceOrderBody"]
    assert set(place["required"]) == {"asset", "type", "quantity"}
    assert {"userId", "asset", "type", "price", "quantity"} <= set(place["properties"])
    docs = httpx.get(f"{live_exchange.http_url}/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
