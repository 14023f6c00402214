"""Process-local metrics (this API process only; Prometheus sums replicas): HTTP requests by
route template and status, and ingested/rejected samples. The ASGI middleware labels a request
by the route that matched (``/v1/instances/{instance_id}``), never by its raw path, so labels
stay low-cardinality and carry no ids."""

from __future__ import annotations

import time
from typing import Any

import prometheus_client
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No ``_created`` series: they double the exposition and no alert needs them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

HTTP_REQUESTS = Counter(
    "dbsize_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "dbsize_http_request_duration_seconds",
    "Time to answer an HTTP request (to the first byte of the response), by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SAMPLES_INGESTED = Counter(
    "dbsize_samples_ingested", "Size samples accepted by ingestion (rows of accepted batches)."
)
SAMPLES_REJECTED = Counter(
    "dbsize_samples_rejected",
    "Size samples refused by ingestion (bad rows of rejected batches; a batch is all or nothing).",
)

UNMATCHED = "<unmatched>"


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED


class HttpMetricsMiddleware:
    """Counts every HTTP response by (method, route template, status)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler becomes a 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                route = route_template(scope)
                HTTP_DURATION.labels(scope["method"], route).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            HTTP_REQUESTS.labels(scope["method"], route_template(scope), str(status)).inc()


def rejected_rows(errors: list[dict[str, Any]] | None) -> int:
    """Distinct rows an ingestion 422 points at (``#/samples/<i>/...`` or ``#/rows/<i>/...``);
    a problem with the batch as a whole (no row index) counts as none."""
    rows = set()
    for error in errors or []:
        parts = str(error.get("pointer", "")).split("/")
        if len(parts) >= 3 and parts[1] in {"samples", "rows"} and parts[2].isdigit():
            rows.add(int(parts[2]))
    return len(rows)
