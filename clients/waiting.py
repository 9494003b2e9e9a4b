"""Counting what a cancel-all closed, through the query API alone.

PlaceOrder, CancelOrder and AmendOrder wait for the engine themselves (`wait_for_outcome`),
but CancelAllOrders answers its request's position only and the API does not say which
orders it closed. So the orders it acts on are listed first, then read with `min_position`
set to the request's position (read-your-writes: the views hold at least the request),
then read again every `POLL_SECONDS` until each is final, within a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import grpc

from clients.client import ExchangeClient
from clients.enums import OrderStatus
from clients.errors import make_error
from clients.models import Order

# How often the orders are read again while the engine has not answered yet.
POLL_SECONDS = 0.05

# Statuses no command or event changes any more.
FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
# Statuses of orders a cancel or a cancel-all still acts on.
OPEN_STATUSES = (
    OrderStatus.PENDING,
    OrderStatus.OPEN,
    OrderStatus.PARTIALLY_FILLED,
    OrderStatus.TRIGGER_PENDING,
)

# The reason of the cancels a CancelAllOrders causes.
MASS_CANCEL = "MASS_CANCEL"


def is_final(order: Order) -> bool:
    return order.status in FINAL_STATUSES


async def wait_for_orders(
    exchange: ExchangeClient,
    order_ids: Sequence[str],
    position: str,
    done: Callable[[Order], bool],
    timeout: float,
) -> list[Order]:
    """The orders (in the order of `order_ids`) once `done` holds for each of them.
    DeadlineExceededError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    orders = dict(
        zip(
            order_ids,
            await asyncio.gather(
                *(
                    exchange.get_order(order_id, min_position=position, timeout=timeout)
                    for order_id in order_ids
                )
            ),
            strict=True,
        )
    )
    while True:
        waiting = [order_id for order_id in order_ids if not done(orders[order_id])]
        if not waiting:
            return [orders[order_id] for order_id in order_ids]
        remaining = deadline - loop.time()
        if remaining <= 0:
            first = orders[waiting[0]]
            still = f"order {first.order_id} still {first.status.value}"
            if len(waiting) > 1:
                still = f"{len(waiting)} orders not done yet ({still})"
            raise make_error(grpc.StatusCode.DEADLINE_EXCEEDED, f"{still} after {timeout:g} s")
        await asyncio.sleep(min(POLL_SECONDS, remaining))
        again = await asyncio.gather(
            *(exchange.get_order(order_id, timeout=max(remaining, 0.001)) for order_id in waiting)
        )
        orders.update(zip(waiting, again, strict=True))


async def open_orders(exchange: ExchangeClient, user_id: str, instrument: str) -> list[Order]:
    """The user's orders a cancel-all would act on, as the views show them now: every page
    of each open status (most recent first within a status)."""
    found: dict[str, Order] = {}
    for status in OPEN_STATUSES:
        page_token = ""
        while True:
            page = await exchange.list_orders(
                user_id, instrument=instrument, status=status, page_token=page_token
            )
            for order in page.orders:
                # Checked here too: an order may change status between two pages.
                if order.status in OPEN_STATUSES and (
                    not instrument or order.instrument == instrument
                ):
                    found.setdefault(order.order_id, order)
            page_token = page.next_page_token
            if not page_token:
                break
    return list(found.values())


async def cancel_all_and_count(
    exchange: ExchangeClient, user_id: str, instrument: str, timeout: float
) -> tuple[str, list[Order]]:
    """Run a user's kill switch and wait for its outcome: the request's log position and
    the orders it cancelled.

    The API does not say which orders a CancelAllOrders closed, so this lists the user's
    open orders first, then writes the request, then waits until each of them is final
    (every one was written before the request, so the engine closes each: cancelled with
    reason MASS_CANCEL, or filled, expired first). The ones cancelled with MASS_CANCEL are
    the count. An order written just before the request but not yet in the views when
    they were listed is cancelled too without being counted."""
    deadline = asyncio.get_running_loop().time() + timeout
    before = await open_orders(exchange, user_id, instrument)
    position = await exchange.cancel_all_orders(user_id, instrument=instrument)
    remaining = max(deadline - asyncio.get_running_loop().time(), 0.001)
    after = await wait_for_orders(
        exchange, [order.order_id for order in before], position, is_final, remaining
    )
    cancelled = [
        order
        for order in after
        if order.status is OrderStatus.CANCELLED and order.reason == MASS_CANCEL
    ]
    return position, cancelled
