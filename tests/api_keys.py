"""API keys for the tests that start an exchange: the harness's admin key, the accounts
whose keys are issued up front, and the keyed channels of `clients.account_keys`.

Every RPC needs a key now (issue 13). So that a test written before keys still says what
it means, the harness's channel calls as the account each request names (see
`clients.account_keys`). Tests of authentication itself use bare channels.
"""

from __future__ import annotations

import contextlib

import grpc.aio

from clients import account_keys
from clients.account_keys import (
    AccountKeys,
    account_keys_interceptors,
    bearer,
    keyed_channel,
)

__all__ = [
    "TEST_ADMIN_API_KEY",
    "TEST_FUNDING",
    "USUAL_ACCOUNTS",
    "AccountKeys",
    "account_channel",
    "account_keys_interceptors",
    "bearer",
    "keyed_channel",
]

# At least 32 characters, as ADMIN_API_KEY must be.
TEST_ADMIN_API_KEY = "test-admin-api-key-0123456789abcdef0123456789"
# Accounts most tests use: their keys are issued when the exchange starts, so a test that
# checks the log did not move around a call does not see a key being issued in between.
USUAL_ACCOUNTS = ("alice", "bob", "carol", "mallory", "maker", "taker", "kim", "bidder")
# Balance checks are on by default: every account a test's key is issued for is funded
# this generously in every configured asset (clients.account_keys), so orders are matched
# as they were before accounts; tests of funds themselves use accounts without it.
# (Within 64-bit integers of units at precision 8, as the engine's snapshots need.)
TEST_FUNDING = {"BTC": "1000000", "ETH": "1000000", "USD": "10000000000"}


def account_channel(
    target: str,
    admin_key: str = TEST_ADMIN_API_KEY,
    funding: dict[str, str] | None = TEST_FUNDING,
) -> contextlib.AbstractAsyncContextManager[grpc.aio.Channel]:
    """A keyed channel to an exchange started with `admin_key` (accounts funded with
    `funding` as their keys are issued: None for an exchange whose engine does not run),
    closed on the way out."""
    return account_keys.account_channel(target, admin_key, funding)
