from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.errors import problem, problem_response
from dbsize.keys.auth import public
from dbsize.openapi_docs import declared_problem
from dbsize.worker.heartbeat import newest_heartbeat

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[public()])
async def healthz() -> dict[str, str]:
    """The process is alive (no dependency is checked)."""
    return {"status": "ok"}


async def _check_postgres(request: Request) -> str | None:
    try:
        async with request.app.state.engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), 3)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def _check_redis(request: Request) -> str | None:
    try:
        await asyncio.wait_for(request.app.state.arq.ping(), 3)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def _check_worker(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    lease = settings.job_lease_seconds
    try:
        async with session_scope(request.app.state.sessionmaker) as session:
            newest = await asyncio.wait_for(newest_heartbeat(session, lease), 3)
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"
    if newest is None:
        return f"no worker has heartbeated within the {lease} s lease"
    return None


@router.get(
    "/readyz",
    dependencies=[public()],
    responses={
        503: declared_problem(
            503, "PostgreSQL or Redis is unreachable, or no worker heartbeats (`checks` says which)"
        )
    },
)
async def readyz(request: Request) -> Any:
    """PostgreSQL and Redis both answer, and a worker has heartbeated within the job lease
    (without one, accepted jobs would wait forever)."""
    pg_error, redis_error, worker_error = await asyncio.gather(
        _check_postgres(request), _check_redis(request), _check_worker(request)
    )
    if pg_error:
        worker_error = "unknown (PostgreSQL is not reachable)"
    checks = {
        "postgres": pg_error or "ok",
        "redis": redis_error or "ok",
        "worker": worker_error or "ok",
    }
    if pg_error or redis_error or worker_error:
        failing = [
            name for name, error in (("postgres", pg_error), ("redis", redis_error)) if error
        ]
        problems = [f"not reachable: {', '.join(failing)}"] if failing else []
        if worker_error and not pg_error:
            problems.append(worker_error)
        body = problem(
            503,
            "Service unavailable",
            "; ".join(problems),
            type_slug="service-unavailable",
            instance="/readyz",
            checks=checks,
        )
        return problem_response(body, {"Retry-After": "5"})
    return JSONResponse({"status": "ready", "checks": checks})
