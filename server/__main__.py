"""``python -m server`` (what ``make run`` runs): the whole exchange in one process.

Uses DATABASE_URL / REDIS_URL when set, else starts embedded PostgreSQL and Redis, prints
where to connect, and stops cleanly on Ctrl-C or SIGTERM. Without ADMIN_API_KEY, the key
of ADMIN_API_KEY_FILE (made on the first start: `server.bootstrap_key`) is the admin key.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from server.app import ExchangeApp, configure_process
from server.bootstrap_key import BootstrapKey, bootstrap_admin_api_key
from server.embedded import resolve_service_urls
from server.observability.tracing import shutdown_tracing
from server.settings import Settings


def _banner(app: ExchangeApp, database: str, redis: str, bootstrap: BootstrapKey | None) -> str:
    port = app.grpc_port
    lines = [
        "",
        f"exchange is running: gRPC on localhost:{port} (plaintext; reflection and health on)",
        f"  instruments: {', '.join(sorted(app.instruments))}",
        f"  event store + views: {database}",
        f"  redis views: {redis}",
    ]
    if app.http_server is not None:
        lines.append(f"  web page: http://localhost:{app.http_port}/  (HTTP API: /docs)")
    if app.metrics_port is not None:
        lines.append(f"  metrics: http://localhost:{app.metrics_port}/metrics")
    key_source = "<an API key>"
    if bootstrap is not None:
        lines.append(f"  {bootstrap.where()}")
        key_source = f"$(cat {bootstrap.path})"
    lines += [
        f"  try: export EXCHANGE_API_KEY={key_source}",
        f"       .venv/bin/exchange --target localhost:{port} book BTC-USD",
        "  Ctrl-C stops it.",
        "",
    ]
    return "\n".join(lines)


async def _serve() -> int:
    settings = Settings.from_env()
    try:
        bootstrap = bootstrap_admin_api_key(os.environ)
    except (OSError, ValueError) as error:
        print(f"exchange failed to start: {error}", file=sys.stderr, flush=True)
        return 1
    if bootstrap is not None:
        settings = replace(settings, admin_api_key=bootstrap.key)
    urls = resolve_service_urls()
    settings = settings.with_urls(urls.database_url, urls.redis_url)
    configure_process(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = ExchangeApp(settings)
    try:
        try:
            await app.start()
        except Exception as error:  # say why in one line; the traceback only when debugging
            if settings.log_level == "DEBUG":
                raise
            print(f"exchange failed to start: {error}", file=sys.stderr, flush=True)
            return 1
        database = "embedded PostgreSQL" if urls.database_is_embedded else "DATABASE_URL"
        redis = "embedded Redis" if urls.redis_is_embedded else "REDIS_URL"
        # What start-up allocated lives as long as the process: out of the collector's way.
        gc.freeze()
        print(_banner(app, database, redis, bootstrap), file=sys.stderr, flush=True)
        await stop.wait()
        print("stopping...", file=sys.stderr, flush=True)
    finally:
        await app.stop()
        shutdown_tracing()  # flush spans still batched for the exporter
    return 0


def main() -> None:
    run: Callable[[Coroutine[Any, Any, int]], int] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop  # a faster event loop where it installs

        run = uvloop.run
    sys.exit(run(_serve()))


if __name__ == "__main__":
    main()
