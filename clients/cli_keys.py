"""`exchange keys issue|revoke|list`: API keys through AdminService (the CLI's key needs
the admin scope).

`issue` prints the key id and the whole key, the only time the service ever shows it
(`--key-only` prints just the key, for `KEY=$(exchange keys issue ...)`); `list` shows ids,
scopes and times, never a secret; `revoke` ends a key on every server within a second.
"""

from __future__ import annotations

import argparse

from clients import render
from clients.client import ExchangeClient
from clients.output import Output


async def run_keys_command(
    exchange: ExchangeClient, arguments: argparse.Namespace, output: Output
) -> None:
    action = arguments.key_action
    if action == "issue":
        scopes = tuple(dict.fromkeys(arguments.scopes))  # each once, in the order given
        issued = await exchange.issue_api_key(arguments.user_id, scopes)
        if arguments.key_only and not output.as_json:
            print(issued.api_key, flush=True)
            return
        shown = {
            "key_id": issued.key_id,
            "user_id": arguments.user_id,
            "scopes": list(scopes),
            "api_key": issued.api_key,
        }
        output.show(shown, render.issued_api_key_table)
        output.note("The key is shown only now: the service keeps only a hash of it.")
    elif action == "revoke":
        await exchange.revoke_api_key(arguments.key_id)
        output.show(
            {"key_id": arguments.key_id, "revoked": True},
            f"revoked key {render.printable(arguments.key_id)}",
        )
    elif action == "list":
        keys = await exchange.list_api_keys(arguments.user_id)
        if output.as_json:
            for key in keys:
                output.show(key)
        else:
            output.show(keys, render.api_keys_table)
    else:  # pragma: no cover - argparse only accepts the actions above
        raise AssertionError(action)
