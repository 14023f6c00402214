"""App factory. The lifespan builds the engine, the sessionmaker, the arq client and the job
change feed once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dbsize import __version__
from dbsize.access_log import AccessLog
from dbsize.collection.endpoints import router as collection_router
from dbsize.config import Settings, get_settings
from dbsize.db import create_engine, create_sessionmaker
from dbsize.docs_ui import install_docs
from dbsize.errors import install_handlers
from dbsize.health import router as health_router
from dbsize.instances.endpoints import router as instances_router
from dbsize.jobs.endpoints import router as jobs_router
from dbsize.jobs.notifications import JobChangeFeed
from dbsize.keys.auth import declare_auth_responses
from dbsize.keys.endpoints import router as keys_router
from dbsize.metrics.endpoints import router as metrics_router
from dbsize.metrics.process import HttpMetricsMiddleware
from dbsize.openapi_docs import install_openapi
from dbsize.problem_pages import router as problem_pages_router
from dbsize.redis import create_arq_redis
from dbsize.request_guard import RequestGuard
from dbsize.samples.endpoints import router as samples_router
from dbsize.statistics.endpoints import router as statistics_router
from dbsize.ui.endpoints import router as ui_router
from dbsize.ui.static import STATIC_DIR, CachedStaticFiles

DESCRIPTION = """
Database-capacity statistics: collectors post daily size samples; aggregation jobs turn them into
daily, weekly (ISO), monthly and quarterly statistics per database and per instance.

**Keys**: every route but the probes and `/metrics` needs an API key with a scope (`read`,
`write`, `admin`; each includes the ones before it), sent as `Authorization: Bearer dbs_…` (the
Authorize button). A missing or unknown key is a `401`, a narrower scope a `403`.

**Errors** are RFC 9457 `application/problem+json` everywhere.

**Jobs** are long-running operations: `POST /v1/aggregation-jobs` answers `202` with a `Location`;
poll it honouring `Retry-After` (or use `If-None-Match`, `?wait=` long-poll, or the SSE `events`
stream). Job records are kept at least 30 days; `Idempotency-Key` values are remembered 24 hours.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.arq = create_arq_redis(settings.redis_url, settings.queue_name)
        app.state.job_feed = JobChangeFeed(engine)
        app.state.job_feed.start()
        try:
            yield
        finally:
            await app.state.job_feed.stop()
            await app.state.arq.aclose()
            await engine.dispose()

    app = FastAPI(
        title="dbsize",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
    )
    app.state.settings = settings
    install_handlers(app)
    app.add_middleware(HttpMetricsMiddleware)
    install_docs(app)
    install_openapi(app)
    # Outermost last: the access line also covers what the guard refuses.
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLog)
    for router in (
        health_router,
        metrics_router,
        instances_router,
        samples_router,
        jobs_router,
        keys_router,
        statistics_router,
        collection_router,
    ):
        app.include_router(declare_auth_responses(router))
    # The dashboard: page shells (no data, so no key) and their static files.
    app.include_router(ui_router)
    app.include_router(problem_pages_router)
    app.mount("/ui/static", CachedStaticFiles(directory=STATIC_DIR), name="ui-static")
    return app
