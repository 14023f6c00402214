"""``GET /metrics``: Prometheus text format, open to scrapers (no key, no ids in labels)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import CollectorRegistry

from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.keys.auth import public
from dbsize.metrics.ledger import LedgerCollector, read_ledger_facts
from dbsize.openapi_docs import PROBLEM_RESPONSES

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    dependencies=[public()],
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4"},
        503: PROBLEM_RESPONSES[503],
    },
)
async def metrics(request: Request) -> Response:
    """Process metrics (HTTP, ingestion, CPU) and ledger facts read from PostgreSQL now (jobs,
    queue depth, retries, records, durations, data freshness, live workers)."""
    settings: Settings = request.app.state.settings
    async with session_scope(request.app.state.sessionmaker) as session:
        facts = await read_ledger_facts(session, lease_seconds=settings.job_lease_seconds)
    ledger = CollectorRegistry(auto_describe=False)
    ledger.register(LedgerCollector(facts))
    body = generate_latest(REGISTRY) + generate_latest(ledger)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
