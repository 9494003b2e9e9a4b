"""What `place`, `cancel` and `cancel-all` print, against the canned server.

`cancel` (and `amend --wait`) wait for the engine's outcome and show the order after it;
`cancel-all` shows the orders the engine cancelled for it; `place` names the log position
it shows.
"""

from __future__ import annotations

import pytest
from canned_exchange import CannedExchange
from cli_runs import run_json, run_text

from clients.generated.exchange.v1 import order_query_service_pb2

CANCELLED_ORDER_LINES = [
    "order_id         cancel-me-1",
    "client_order_id  c-1",
    "user_id          alice",
    "instrument       BTC-USD",
    "side             BUY",
    "type             LIMIT",
    "price            45000.00",
    "quantity         1.5000",
    "filled_quantity  0.5000",
    "average_price    44999.5000",
    "status           CANCELLED",
    "reason           USER_REQUESTED",
    "time_in_force    GTC",
    "created_at       2026-01-02T03:04:05.123Z",
    "updated_at       2026-01-02T03:04:06.000Z",
    "post_only        False",
]


def _order_reads(canned_exchange: CannedExchange, order_id: str) -> list[str]:
    """The min_position of each GetOrder the canned server received for `order_id`."""
    return [
        request.min_position
        for request in canned_exchange.queries.requests
        if isinstance(request, order_query_service_pb2.GetOrderRequest)
        and request.order_id == order_id
    ]


# --- place: the position line is labelled ----------------------------------------------------


async def test_place_labels_the_log_position_of_the_order_it_shows(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["place", "--user", "bob", "--instrument", "BTC-USD", "--side", "sell"]
    argv += ["--price", "45000", "--quantity", "1", "--client-order-id", "label-1"]
    status, out, err = await run_text(canned_exchange.target, capsys, *argv)
    number = len(canned_exchange.commands.placed)
    order_lines = [
        f"order_id         o-{number}",
        "client_order_id  label-1",
        "user_id          bob",
        "instrument       BTC-USD",
        "side             SELL",
        "type             LIMIT",
        "price            45000.00",
        "quantity         1.0000",
        "filled_quantity  0.0000",
        "status           PENDING",
        "time_in_force    GTC",
        "created_at       2026-01-02T03:04:05.123Z",
        "updated_at       2026-01-02T03:04:05.123Z",
        "post_only        False",
    ]
    assert (status, err) == (0, "")
    assert out == [f"placed at log position p-{number}", *order_lines]

    status, out, err = await run_text(canned_exchange.target, capsys, *argv)
    assert (status, err) == (0, "")
    assert out == [
        "already placed with this client order id, at log position p-dup",
        *order_lines,
    ]


# --- cancel: the order after the cancel --------------------------------------------------------


async def test_cancel_waits_for_the_engine_and_shows_the_order_after_the_cancel(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await run_text(
        canned_exchange.target, capsys, "cancel", "--user", "alice", "cancel-me-1"
    )
    assert (status, err) == (0, "")
    assert out == [
        "cancel answered at log position p-cancel-answer; the order after it:",
        *CANCELLED_ORDER_LINES,
    ]
    # The service waited for the engine: the order is not read back.
    assert _order_reads(canned_exchange, "cancel-me-1") == []


async def test_cancel_shows_the_fill_that_came_before_it(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, [result], err = await run_json(
        canned_exchange.target, capsys, "cancel", "--user", "alice", "filled-first-1"
    )
    assert (status, err) == (0, "")
    assert result["position"] == "p-cancel-answer"
    assert result["rejection_reason"] == "ORDER_CLOSED"
    order = result["order"]
    assert isinstance(order, dict)
    assert (order["order_id"], order["status"], order["reason"], order["filled_quantity"]) == (
        "filled-first-1",
        "FILLED",
        "",
        "1.5000",
    )


async def test_cancel_no_wait_shows_the_order_before_the_cancel(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await run_text(
        canned_exchange.target, capsys, "cancel", "--user", "alice", "cancel-me-2", "--no-wait"
    )
    assert (status, err) == (0, "")
    assert out[0] == "cancel requested at log position p-cancel; the order before the cancel:"
    assert out[1] == "order_id         cancel-me-2"
    assert out[11] == "status           PARTIALLY_FILLED"
    assert _order_reads(canned_exchange, "cancel-me-2") == []


async def test_cancel_the_engine_rejected_names_its_reason(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await run_text(
        canned_exchange.target, capsys, "cancel", "--user", "alice", "filled-first-2"
    )
    assert (status, err) == (0, "")  # the cancel was accepted; the fill came first
    assert out[0] == (
        "cancel rejected by the engine (ORDER_CLOSED) at log position p-cancel-answer; "
        "the order as it stands:"
    )
    assert out[11] == "status           FILLED"


# --- amend: before it, or with --wait after the engine's answer --------------------------------


async def test_amend_shows_the_order_before_the_amend(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await run_text(
        canned_exchange.target, capsys, "amend", "--user", "alice", "a-1", "--quantity", "1"
    )
    assert (status, err) == (0, "")
    assert out[0] == "amend requested at log position p-amend; the order before the amend:"


async def test_amend_wait_shows_the_engines_answer(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["amend", "--user", "alice", "a-2", "--quantity", "1", "--wait"]
    status, out, err = await run_text(canned_exchange.target, capsys, *argv)
    assert (status, err) == (0, "")
    assert out[0] == "amend answered at log position p-amend-answer; the order after it:"
    assert out[8] == "quantity         1.0000"

    argv = ["amend", "--user", "alice", "filled-first-3", "--quantity", "1", "--wait"]
    status, [result], err = await run_json(canned_exchange.target, capsys, *argv)
    assert (status, err) == (0, "")
    assert result["rejection_reason"] == "ORDER_CLOSED"
    assert result["order"]["status"] == "FILLED"  # type: ignore[index]


# --- cancel-all: how many orders it cancelled --------------------------------------------------


async def test_cancel_all_prints_how_many_orders_it_cancelled(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, [result], err = await run_json(
        canned_exchange.target, capsys, "cancel-all", "--user", "kill-a"
    )
    assert (status, err) == (0, "")
    sent = canned_exchange.commands.cancel_all_requests[-1]
    assert (sent.user_id, sent.instrument) == ("kill-a", "")
    assert sent.wait_for_outcome
    # kill-a-2 was PENDING and filled before the engine read the cancel-all: not counted.
    assert (result["position"], result["cancelled"]) == ("p-cancel-all-answer", 2)
    cancelled = result["cancelled_orders"]
    assert isinstance(cancelled, list)
    assert [(o["order_id"], o["status"], o["reason"]) for o in cancelled] == [
        ("kill-a-3", "CANCELLED", "MASS_CANCEL"),
        ("kill-a-1", "CANCELLED", "MASS_CANCEL"),
    ]
    # The service answered which orders it cancelled: none is read back.
    for order_id in ("kill-a-1", "kill-a-2", "kill-a-3"):
        assert _order_reads(canned_exchange, order_id) == []


async def test_cancel_all_on_one_instrument_as_a_table(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await run_text(
        canned_exchange.target, capsys, "cancel-all", "--user", "kill-b", "--instrument", "ETH-USD"
    )
    assert (status, err) == (0, "")
    sent = canned_exchange.commands.cancel_all_requests[-1]
    assert (sent.user_id, sent.instrument) == ("kill-b", "ETH-USD")
    assert out == [
        "cancel-all answered at log position p-cancel-all-answer: 1 order cancelled",
        "┏━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━┳━━━━━━━┳━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┳"
        "━━━━━━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━┓",
        "┃ order_id ┃ instrument ┃ side ┃ type  ┃ price  ┃ quantity ┃ filled_quantity ┃"
        " average_price ┃ status    ┃ reason      ┃ updated_at               ┃",
        "┡━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━╇━━━━━━━╇━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━━━━━╇"
        "━━━━━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━┩",
        "│ kill-b-3 │ ETH-USD    │ BUY  │ LIMIT │ 100.00 │ 2.000    │ 0.000           │"
        "               │ CANCELLED │ MASS_CANCEL │ 2026-01-02T03:04:06.000Z │",
        "└──────────┴────────────┴──────┴───────┴────────┴──────────┴─────────────────┴"
        "───────────────┴───────────┴─────────────┴──────────────────────────┘",
    ]


async def test_cancel_all_with_nothing_open_prints_zero(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await run_text(
        canned_exchange.target, capsys, "cancel-all", "--user", "kill-c", "--instrument", "XRP-USD"
    )
    assert (status, out, err) == (
        0,
        ["cancel-all answered at log position p-cancel-all-answer: 0 orders cancelled"],
        "",
    )


async def test_cancel_all_no_wait_prints_the_position_only(
    canned_exchange: CannedExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    lists_before = len(canned_exchange.queries.requests)
    status, lines, _ = await run_json(
        canned_exchange.target, capsys, "cancel-all", "--user", "dan", "--no-wait"
    )
    assert (status, lines) == (0, [{"position": "p-cancel-all"}])
    sent = canned_exchange.commands.cancel_all_requests[-1]
    assert (sent.user_id, sent.instrument) == ("dan", "")
    assert canned_exchange.queries.requests[lists_before:] == []
    status, out, _ = await run_text(
        canned_exchange.target, capsys, "cancel-all", "--user", "dan", "--no-wait"
    )
    assert (status, out) == (0, ["cancel-all requested at log position p-cancel-all"])
