"""The PostgreSQL adapter of the event store port (asyncpg)."""

from server.eventstore.postgres.store import PostgresEventStore

__all__ = ["PostgresEventStore"]
