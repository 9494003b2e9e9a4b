"""The HTTP server: the Starlette application (API, live feeds, OpenAPI document, web
page) served by uvicorn inside the service's own event loop.

Starlette is a small, pure ASGI toolkit (routing, requests, streaming responses) on which
FastAPI itself is built; the bodies and the OpenAPI document come from our own msgspec
structs, so FastAPI's pydantic layer would be a second model of the same bodies. uvicorn
is the reference ASGI server. The socket is bound here, not by uvicorn, so a port in use
fails the start with an error naming HTTP_PORT (uvicorn would exit the process), and
uvicorn's signal handling is left out (``python -m server`` owns SIGINT/SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from importlib import resources
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from server.http.api import HttpApi
from server.http.door import Door
from server.http.errors import error_response
from server.http.openapi import openapi_document

log = structlog.get_logger(__name__)

STATIC_DIR = resources.files("server.http") / "static"
DESCRIPTION = (
    "The exchange's HTTP API: the same command handlers, views, keys, scopes and limits as "
    "its gRPC API (`exchange.v1`). Send `Authorization: Bearer <key>`. Decimals are strings "
    "(requests may send JSON numbers); times are RFC 3339 (UTC)."
)


def build_application(api: HttpApi, door: Door, version: str) -> Starlette:
    operations = api.operations()
    document = openapi_document(operations, "exchange-core", version, DESCRIPTION)
    static = str(STATIC_DIR)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    async def page(name: str) -> Response:
        return FileResponse(f"{static}/{name}", headers={"Cache-Control": "no-cache"})

    async def index(request: Request) -> Response:
        return await page("index.html")

    async def docs(request: Request) -> Response:
        return await page("docs.html")

    routes: list[Any] = [
        Route("/", index, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
        *door.routes(operations),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_exception})


# What Starlette answers itself (no such path, a method the path does not take) as the
# API's JSON error body.
_CODE_OF_STATUS = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def _http_exception(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = _CODE_OF_STATUS.get(error.status_code, "INVALID_ARGUMENT")
    return error_response(code, str(error.detail), error.status_code, headers=error.headers)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the process's own handlers stay (server.__main__)


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port} (HTTP_PORT): {error}") from error
    sock.setblocking(False)
    return sock


class HttpServer:
    """``start()`` binds and serves; ``port`` is the bound port; ``stop()`` ends it."""

    def __init__(self, application: Starlette, host: str, port: int) -> None:
        self._application = application
        self._host = host
        self._requested_port = port
        self.port = 0
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sock = _bound_socket(self._host, self._requested_port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._application,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raise what stopped it
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)  # uvicorn offers no awaitable "started"

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
