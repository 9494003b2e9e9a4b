"""The venue's first admin key when none is configured: made once, kept in a file.

`make run` must work from a fresh clone, and every call needs a key, so someone has to
hold an admin key before the first call. When `ADMIN_API_KEY` is unset and
`ADMIN_API_KEY_FILE` names a file (`make run` sets `.data/admin-api-key`), the first start
writes a new key there (`secrets.token_urlsafe(32)`: 256 random bits, 43 characters) with
mode 0600, creating its directory, and later starts read it back. The service then runs
with it as its `ADMIN_API_KEY`. Only the file's path is ever printed, never the key.
Without `ADMIN_API_KEY_FILE` (the Docker image, the tests) nothing happens here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from server.identity.keyring import MIN_BOOTSTRAP_KEY_CHARS

KEY_FILE_VARIABLE = "ADMIN_API_KEY_FILE"
KEY_FILE_MODE = 0o600


@dataclass(frozen=True)
class BootstrapKey:
    """The admin key of a key file, and whether this start created it."""

    key: str
    path: Path
    created: bool

    def where(self) -> str:
        """One line for the start banner: where the key is (not the key)."""
        how = "created now" if self.created else "from an earlier start"
        return f"admin API key: in {self.path} ({how}; mode 0600)"


class BootstrapKeyFileInvalid(ValueError):
    """The key file exists but does not hold a usable key."""


def bootstrap_admin_api_key(environ: Mapping[str, str]) -> BootstrapKey | None:
    """The key of `ADMIN_API_KEY_FILE` (made on first use) when `ADMIN_API_KEY` is unset;
    None when `ADMIN_API_KEY` is set or no key file is named."""
    if environ.get("ADMIN_API_KEY", "") or not environ.get(KEY_FILE_VARIABLE, "").strip():
        return None
    return admin_api_key_in(Path(environ[KEY_FILE_VARIABLE].strip()))


def admin_api_key_in(path: Path) -> BootstrapKey:
    """The key in `path`, written there first if the file does not exist."""
    key = secrets.token_urlsafe(32)
    if _create(path, key):
        return BootstrapKey(key, path, created=True)
    stored = path.read_text(encoding="utf-8").strip()
    if len(stored) < MIN_BOOTSTRAP_KEY_CHARS:
        raise BootstrapKeyFileInvalid(
            f"{path} holds no admin key of {MIN_BOOTSTRAP_KEY_CHARS} characters or more "
            "(delete it and start again to make a new one)"
        )
    return BootstrapKey(stored, path, created=False)


def _create(path: Path, key: str) -> bool:
    """Write `key` to a new file at `path` (mode 0600); False if the file exists.

    Written to a temporary file first and linked into place, so a start racing this one
    reads either no file or the whole key, never a half-written one, and two racing
    starts agree on one key (the second link fails: it reads the first's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return False
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        os.fchmod(descriptor, KEY_FILE_MODE)  # whatever the umask
        os.write(descriptor, f"{key}\n".encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return True
