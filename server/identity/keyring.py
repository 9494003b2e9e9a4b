"""The key set every server holds: folded from the log's ``ApiKeyIssued``/``ApiKeyRevoked``.

``KeyRing`` answers "who is this key?" in memory; ``KeyRingFollower`` fills it from the
whole log before the server serves, then follows the log in the background, so a key
revoked on another server is refused here within ~0.1 s of the revocation becoming visible
(``FOLLOW_EVERY_S``). Last-used times are kept per server, in memory only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from server.consumers.tasks import stop_task
from server.errors import Unauthenticated
from server.eventstore.port import EventFilter, EventStore, LogPosition, RecordedEvent
from server.identity.context import Principal
from server.identity.keys import MalformedKey, parse_key, secret_matches, text_matches
from server.identity.scopes import Scope
from server.log_contract.layout import API_KEY_EVENT_TYPES, API_KEY_STREAM_PREFIX
from server.log_contract.mapper import decode
from server.log_contract.records import ApiKeyIssued, ApiKeyRevoked

log = structlog.get_logger(__name__)

BOOTSTRAP_KEY_ID = "bootstrap"
BOOTSTRAP_USER_ID = "admin"
MIN_BOOTSTRAP_KEY_CHARS = 32
KEY_RECORDS = EventFilter(stream_prefixes=(API_KEY_STREAM_PREFIX,), event_types=API_KEY_EVENT_TYPES)
READ_PAGE = 1000
RETRY_S = 0.5
RETRY_MAX_S = 5.0
# How often the follower looks for new key records once caught up. A revocation must reach
# every server within a second (docs/api.md); reading on every commit instead cost the
# order path one query per group commit (~0.1 ms of service CPU per order in the bench).
FOLLOW_EVERY_S = 0.1


class BootstrapKeyTooShort(ValueError):
    """ADMIN_API_KEY is set but shorter than the minimum."""


@dataclass
class KeyEntry:
    key_id: str
    user_id: str
    scopes: frozenset[Scope]
    secret_sha256: str
    issued_at: datetime
    revoked: bool = False
    last_used_at: datetime | None = None

    def principal(self) -> Principal:
        return Principal(self.key_id, self.user_id, self.scopes)


@dataclass(frozen=True)
class _Verified:
    """A key text whose secret matched once: its entry (read for `revoked` on each call,
    so a revocation applies at once) and its principal, built once."""

    entry: KeyEntry
    principal: Principal


class KeyRing:
    def __init__(self, bootstrap_key: str = "") -> None:
        if bootstrap_key and len(bootstrap_key) < MIN_BOOTSTRAP_KEY_CHARS:
            raise BootstrapKeyTooShort(
                f"ADMIN_API_KEY must be at least {MIN_BOOTSTRAP_KEY_CHARS} characters "
                f"(it has {len(bootstrap_key)})"
            )
        self._bootstrap_key = bootstrap_key
        self._bootstrap = Principal(BOOTSTRAP_KEY_ID, BOOTSTRAP_USER_ID, frozenset({Scope.ADMIN}))
        self._entries: dict[str, KeyEntry] = {}
        # Key texts already checked against their stored hash, so a call costs one lookup
        # instead of a parse, a SHA-256 and a compare (~5 us). Only texts that matched an
        # issued key enter, so it holds at most one text per key.
        self._verified: dict[str, _Verified] = {}

    def apply(self, record: ApiKeyIssued | ApiKeyRevoked) -> None:
        """Fold one record; idempotent (a key applied locally comes back from the log)."""
        if isinstance(record, ApiKeyIssued):
            if record.key_id not in self._entries:
                self._entries[record.key_id] = KeyEntry(
                    key_id=record.key_id,
                    user_id=record.user_id,
                    scopes=frozenset(Scope(scope) for scope in record.scopes),
                    secret_sha256=record.secret_sha256,
                    issued_at=record.issued_at,
                )
        else:
            entry = self._entries.get(record.key_id)
            if entry is not None:
                entry.revoked = True

    def authenticate(self, key_text: str) -> Principal:
        """The principal of a presented key; Unauthenticated for anything else."""
        verified = self._verified.get(key_text)
        if verified is not None:
            return self._used(verified.entry, verified.principal)
        if self._bootstrap_key and text_matches(key_text, self._bootstrap_key):
            return self._bootstrap
        try:
            key_id, secret = parse_key(key_text)
        except MalformedKey:
            raise Unauthenticated("malformed API key") from None
        entry = self._entries.get(key_id)
        if entry is None or not secret_matches(secret, entry.secret_sha256):
            raise Unauthenticated("unknown API key")
        principal = entry.principal()
        self._verified[key_text] = _Verified(entry, principal)
        return self._used(entry, principal)

    @staticmethod
    def _used(entry: KeyEntry, principal: Principal) -> Principal:
        if entry.revoked:
            raise Unauthenticated("revoked API key")
        entry.last_used_at = datetime.now(UTC)
        return principal

    def get(self, key_id: str) -> KeyEntry | None:
        return self._entries.get(key_id)

    def keys(self, user_id: str | None = None) -> list[KeyEntry]:
        """Keys of one account (all when None), oldest first."""
        return sorted(
            (e for e in self._entries.values() if user_id is None or e.user_id == user_id),
            key=lambda entry: (entry.issued_at, entry.key_id),
        )


def _key_record(event: RecordedEvent) -> ApiKeyIssued | ApiKeyRevoked:
    record = decode(event)
    assert isinstance(record, ApiKeyIssued | ApiKeyRevoked)
    return record


class KeyRingFollower:
    """Loads every key record into a ring, then follows the log for new ones."""

    def __init__(self, event_store: EventStore, ring: KeyRing) -> None:
        self._event_store = event_store
        self._ring = ring
        self._position: LogPosition | None = None
        self._task: asyncio.Task[None] | None = None
        self._moved = asyncio.Condition()

    async def load(self) -> None:
        """Every key record up to the log's head (before the server serves)."""
        while True:
            events = await self._event_store.read_all(self._position, KEY_RECORDS, READ_PAGE)
            for event in events:
                self._apply(event)
            if len(events) < READ_PAGE:
                return

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="key-ring")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    def _apply(self, event: RecordedEvent) -> None:
        self._ring.apply(_key_record(event))
        self._position = event.position

    def reached(self, position: LogPosition) -> bool:
        return self._position is not None and self._position >= position

    async def wait_until(self, position: LogPosition, timeout_s: float) -> bool:
        """Whether the ring holds every key record up to `position` within `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s), self._moved:
                await self._moved.wait_for(lambda: self.reached(position))
        except TimeoutError:
            return False
        return True

    async def _notify(self) -> None:
        async with self._moved:
            self._moved.notify_all()

    async def _follow(self) -> None:
        """Follow the log; while it cannot be read, retry (backing off) with one line when
        the outage starts and one when it ends, never one per retry."""
        failing = False
        retry_s = RETRY_S
        while True:
            try:
                async for event in self._event_store.subscribe_all(
                    self._position, KEY_RECORDS, min_wait_s=FOLLOW_EVERY_S
                ):
                    if failing:
                        failing, retry_s = False, RETRY_S
                        log.info("key_ring_follow_resumed")
                    self._apply(event)
                    await self._notify()
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the log unreachable for a while: resubscribe
                if not failing:
                    failing = True
                    log.warning("key_ring_follow_failed", error=repr(error))
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, RETRY_MAX_S)
