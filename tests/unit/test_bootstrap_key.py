"""`make run`'s admin key (server/bootstrap_key.py): made once in ADMIN_API_KEY_FILE with
mode 0600, read back by later starts, and nothing at all when ADMIN_API_KEY is set or no
key file is named. (A whole `make run` start and restart: tests/clients/test_cli_keys_e2e.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from server.bootstrap_key import (
    BootstrapKey,
    BootstrapKeyFileInvalid,
    admin_api_key_in,
    bootstrap_admin_api_key,
)


def test_the_first_start_writes_a_key_later_starts_read_it(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "admin-api-key"
    first = bootstrap_admin_api_key({"ADMIN_API_KEY_FILE": str(path)})
    assert first is not None and first.created and first.path == path
    assert len(first.key) == 43  # secrets.token_urlsafe(32): 256 bits
    assert path.read_text() == first.key + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == ["admin-api-key"]
    again = bootstrap_admin_api_key({"ADMIN_API_KEY_FILE": str(path)})
    assert again == BootstrapKey(first.key, path, created=False)
    assert again.where() == f"admin API key: in {path} (from an earlier start; mode 0600)"


def test_the_key_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        created = admin_api_key_in(tmp_path / "admin-api-key")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(created.path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "environ",
    [
        {"ADMIN_API_KEY": "x" * 40, "ADMIN_API_KEY_FILE": "{path}"},
        {"ADMIN_API_KEY_FILE": ""},
        {},
    ],
)
def test_nothing_happens_with_a_key_set_or_no_key_file(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    path = tmp_path / "admin-api-key"
    named = {name: value.format(path=path) for name, value in environ.items()}
    assert bootstrap_admin_api_key(named) is None
    assert not path.exists()


def test_a_key_file_without_a_usable_key_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "admin-api-key"
    path.write_text("short\n")
    with pytest.raises(BootstrapKeyFileInvalid, match="holds no admin key of 32 characters"):
        admin_api_key_in(path)
    assert path.read_text() == "short\n"  # never overwritten: it may be someone's key
