"""One structured access line per request: method, route template, status, milliseconds.

The route *template* (``/v1/instances/{instance_id}``), not the raw path, so lines group by
route and carry no ids or query strings (which may hold names). uvicorn's own access log is off
(``dbsize.logging``); this line replaces it.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dbsize.logging import get_logger

log = get_logger("dbsize.access")


def route_template(scope: Scope) -> str | None:
    """The template of the route that answered (FastAPI records it in the scope once routed);
    ``<mount>/{path}`` for a mounted app such as /static; None when no route matched."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return str(route.path)
    mounted = scope.get("root_path")
    return f"{mounted}/{{path}}" if mounted else None


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            log.info(
                "request",
                method=scope["method"],
                route=route_template(scope),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
