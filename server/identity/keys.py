"""An API key's text and what is stored of it.

A key reads ``exk_<key_id>_<secret>``: `key_id` is 16 lowercase hex characters (random,
public: it names the key in the log and in ListApiKeys), `secret` is
``secrets.token_urlsafe(32)`` (256 random bits). The log keeps only the SHA-256 of the
secret. A plain hash is sound here because the secret is uniformly random and 256 bits
long: there is no dictionary to try and no guess is cheaper than 2^255 hashes, so a slow
KDF (meant for low-entropy passwords) would only slow every call down.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

KEY_PREFIX: Final = "exk_"
KEY_ID_BYTES: Final = 8  # 16 hex characters
SECRET_BYTES: Final = 32  # 256 bits
# Longest key text read at all (a generated one is 4 + 16 + 1 + 43 characters).
MAX_KEY_CHARS: Final = 256

_KEY_TEXT = re.compile(r"exk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


class MalformedKey(ValueError):
    """Text that is not an API key of this service."""


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def text(self) -> str:
        return f"{KEY_PREFIX}{self.key_id}_{self.secret}"


def new_key() -> NewKey:
    return NewKey(secrets.token_hex(KEY_ID_BYTES), secrets.token_urlsafe(SECRET_BYTES))


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(text: str) -> tuple[str, str]:
    """(key_id, secret) of a key's text; MalformedKey for anything else."""
    match = _KEY_TEXT.fullmatch(text) if len(text) <= MAX_KEY_CHARS else None
    if match is None:
        raise MalformedKey("not an API key")
    return match.group(1), match.group(2)


def secret_matches(secret: str, stored_sha256: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(secret_sha256(secret), stored_sha256)


def text_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison of two key texts (the bootstrap key, compared whole)."""
    return hmac.compare_digest(presented.encode(), expected.encode())
