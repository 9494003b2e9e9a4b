"""The HTTP transport: a JSON API (the seed's ``POST /orders`` and ``GET /orders/{id}`` and
the rest), server-sent event feeds, the OpenAPI document and the web page, on Starlette
and uvicorn. It calls the same use cases as the gRPC servicers (``server.order_commands``,
``server.order_reads``, ``projections.live``); only this package knows HTTP."""
