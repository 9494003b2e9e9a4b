"""PostgreSQL schema of the read side: orders, their fills, trades, balances, the ledger,
instrument statuses, and builder checkpoints.

`migrate` is idempotent (CREATE ... IF NOT EXISTS); `drop_views` removes the views and the
checkpoints so that a rebuild replays the log from the start. Decimals are NUMERIC, times
timestamptz. `order_seq` / `trade_seq` / `fill_seq` / `entry_id` count rows in log order;
they are the keyset-pagination keys. The builder assigns them itself (not identities, which a rolled
back batch would leave gaps in), so a rebuild assigns the same numbers.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection of its own or one lent by a pool (the service's pg_pools has the same alias;
# the read side does not import the service's internals).
PgConnection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

CHECKPOINTS_TABLE = "projection_checkpoints"
# One row naming this database's log. The Redis views record the id they were built from,
# so Redis kept from another database (a fresh DATABASE_URL, a restored backup) is noticed
# and rebuilt instead of being served as if it described this log.
LOG_IDENTITY_TABLE = "projection_log_identity"

_MIGRATIONS = (
    f"""
    CREATE TABLE IF NOT EXISTS {CHECKPOINTS_TABLE} (
        name text PRIMARY KEY,
        position text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS view_orders (
        order_id text PRIMARY KEY,
        order_seq bigint NOT NULL UNIQUE,
        client_order_id text NOT NULL DEFAULT '',
        user_id text NOT NULL DEFAULT '',
        instrument text NOT NULL DEFAULT '',
        side text NOT NULL DEFAULT '',
        type text NOT NULL DEFAULT '',
        price numeric,
        quantity numeric NOT NULL DEFAULT 0,
        filled_quantity numeric NOT NULL DEFAULT 0,
        filled_notional numeric NOT NULL DEFAULT 0,
        stage text NOT NULL,
        final_status text,
        status text NOT NULL,
        reason text NOT NULL DEFAULT '',
        time_in_force text NOT NULL DEFAULT '',
        stop_price numeric,
        post_only boolean NOT NULL DEFAULT false,
        expire_time timestamptz,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS view_orders_by_user ON view_orders (user_id, order_seq DESC)",
    """CREATE INDEX IF NOT EXISTS view_orders_by_user_instrument
       ON view_orders (user_id, instrument, order_seq DESC)""",
    """CREATE INDEX IF NOT EXISTS view_orders_by_user_status
       ON view_orders (user_id, status, order_seq DESC)""",
    """
    CREATE INDEX IF NOT EXISTS view_orders_by_client_order_id
       ON view_orders (user_id, client_order_id) WHERE client_order_id <> ''
    """,
    """
    CREATE TABLE IF NOT EXISTS view_order_fills (
        order_id text NOT NULL,
        trade_id text NOT NULL,
        fill_seq bigint NOT NULL UNIQUE,
        price numeric NOT NULL,
        quantity numeric NOT NULL,
        liquidity text NOT NULL,
        executed_at timestamptz,
        PRIMARY KEY (order_id, trade_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS view_trades (
        instrument text NOT NULL,
        trade_id text NOT NULL,
        trade_seq bigint NOT NULL UNIQUE,
        price numeric NOT NULL,
        quantity numeric NOT NULL,
        maker_order_id text NOT NULL,
        taker_order_id text NOT NULL,
        taker_side text NOT NULL,
        maker_user_id text NOT NULL DEFAULT '',
        taker_user_id text NOT NULL DEFAULT '',
        executed_at timestamptz,
        position text NOT NULL,
        PRIMARY KEY (instrument, trade_id)
    )
    """,
    """CREATE INDEX IF NOT EXISTS view_trades_by_instrument
       ON view_trades (instrument, trade_seq DESC)""",
    # Each side's fee, from the trade's TradeSettled (NULL with accounts off).
    "ALTER TABLE view_trades ADD COLUMN IF NOT EXISTS buyer_fee numeric",
    "ALTER TABLE view_trades ADD COLUMN IF NOT EXISTS seller_fee numeric",
    "ALTER TABLE view_trades ADD COLUMN IF NOT EXISTS fee_asset text NOT NULL DEFAULT ''",
    # Balances: one row per account and asset, with the position of its last change.
    """
    CREATE TABLE IF NOT EXISTS view_balances (
        user_id text NOT NULL,
        asset text NOT NULL,
        available numeric NOT NULL,
        held numeric NOT NULL,
        updated_at timestamptz NOT NULL,
        position text NOT NULL,
        PRIMARY KEY (user_id, asset)
    )
    """,
    # Every change of a balance, with its cause. entry_id counts rows in log order (the
    # keyset key); (position, entry_index) names the entry in the log: a replayed event
    # cannot add its entries twice.
    """
    CREATE TABLE IF NOT EXISTS view_ledger_entries (
        entry_id bigint PRIMARY KEY,
        user_id text NOT NULL,
        asset text NOT NULL,
        cause text NOT NULL,
        available_change numeric NOT NULL,
        held_change numeric NOT NULL,
        reference text NOT NULL,
        at timestamptz NOT NULL,
        position text NOT NULL,
        entry_index integer NOT NULL,
        UNIQUE (position, entry_index)
    )
    """,
    """CREATE INDEX IF NOT EXISTS view_ledger_entries_by_user
       ON view_ledger_entries (user_id, entry_id DESC)""",
    """CREATE INDEX IF NOT EXISTS view_ledger_entries_by_user_asset
       ON view_ledger_entries (user_id, asset, entry_id DESC)""",
    # Venue controls: an instrument's status once an admin changed it (absent: TRADING).
    """
    CREATE TABLE IF NOT EXISTS view_instrument_status (
        instrument text PRIMARY KEY,
        status text NOT NULL,
        updated_at timestamptz NOT NULL,
        position text NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {LOG_IDENTITY_TABLE} (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        log_id uuid NOT NULL DEFAULT gen_random_uuid()
    )
    """,
    f"INSERT INTO {LOG_IDENTITY_TABLE} DEFAULT VALUES ON CONFLICT DO NOTHING",
)

VIEW_TABLES = (
    "view_orders",
    "view_order_fills",
    "view_trades",
    "view_balances",
    "view_ledger_entries",
    "view_instrument_status",
)

# Serialises concurrent migrations (several processes starting at once).
_MIGRATION_LOCK_KEY = 0x70726F6A  # "proj"


async def migrate(connection: PgConnection) -> None:
    """Create the view tables and the checkpoint table if they are missing."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
        for statement in _MIGRATIONS:
            await connection.execute(statement)


async def load_log_identity(connection: PgConnection) -> str:
    """The id of the log this database holds (created by `migrate`)."""
    return str(await connection.fetchval(f"SELECT log_id FROM {LOG_IDENTITY_TABLE}"))


async def drop_views(connection: PgConnection, checkpoint_names: tuple[str, ...]) -> None:
    """Drop the view tables and forget the given builders' checkpoints."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
        for table in VIEW_TABLES:
            await connection.execute(f"DROP TABLE IF EXISTS {table}")
        exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", CHECKPOINTS_TABLE)
        if exists:
            await connection.execute(
                f"DELETE FROM {CHECKPOINTS_TABLE} WHERE name = ANY($1::text[])",
                list(checkpoint_names),
            )
