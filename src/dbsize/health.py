from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from dbsize.errors import problem, problem_response
from dbsize.keys.auth import public

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


@router.get(
    "/readyz",
    dependencies=[public()],
    responses={
        503: {
            "description": "A dependency is unreachable",
            "content": {"application/problem+json": {}},
        }
    },
)
async def readyz(request: Request) -> Any:
    """PostgreSQL and Redis both answer."""
    pg_error, redis_error = await asyncio.gather(_check_postgres(request), _check_redis(request))
    checks = {"postgres": pg_error or "ok", "redis": redis_error or "ok"}
    if pg_error or redis_error:
        failing = [
            name for name, error in (("postgres", pg_error), ("redis", redis_error)) if error
        ]
        body = problem(
            503,
            "Service unavailable",
            f"not reachable: {', '.join(failing)}",
            type_slug="service-unavailable",
            instance="/readyz",
            checks=checks,
        )
        return problem_response(body, {"Retry-After": "5"})
    return JSONResponse({"status": "ready", "checks": checks})
