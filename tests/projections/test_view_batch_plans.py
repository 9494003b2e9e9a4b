"""The plans a view batch runs with: every statement reaches rows through an index."""

from __future__ import annotations

import asyncpg

from projections.postgres_schema import migrate
from projections.postgres_views import BEGIN_VIEW_BATCH, SELECT_ORDERS

ROWS = 5000
BATCH_IDS = 300


async def test_a_batch_looks_its_orders_up_by_key_on_a_table_never_analyzed(
    fresh_database_url: str,
) -> None:
    """A batch reads the orders it touches with `order_id = ANY (ids)`. On a view that grew
    since its last ANALYZE (here: never analyzed) the planner chose a sequential scan that
    compares every row with every id, so each batch cost more as the table grew."""
    connection = await asyncpg.connect(fresh_database_url)
    try:
        await migrate(connection)
        await connection.execute(
            "INSERT INTO view_orders (order_id, order_seq, stage, status, created_at, updated_at)"
            " SELECT 'order-' || g, g, 'OPEN', 'OPEN', now(), now()"
            f" FROM generate_series(1, {ROWS}) AS g"
        )
        ids = [f"order-{index}" for index in range(1, ROWS, ROWS // BATCH_IDS)]
        await connection.execute(BEGIN_VIEW_BATCH)
        try:
            plan = "\n".join(
                row[0] for row in await connection.fetch("EXPLAIN " + SELECT_ORDERS, ids)
            )
            found = await connection.fetch(SELECT_ORDERS, ids)
        finally:
            await connection.execute("ROLLBACK")
    finally:
        await connection.close()
    assert "Seq Scan" not in plan, plan.splitlines()[0]
    assert "view_orders_pkey" in plan, plan.splitlines()[0]
    assert sorted(row["order_id"] for row in found) == sorted(ids)
