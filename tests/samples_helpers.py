"""Helpers for the samples tests: a pinned clock, payload builders and direct table reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from dbsize.keys.tokens import Scope
from dbsize.main import create_app
from dbsize.samples.endpoints import clock
from tests.conftest import bearer, make_key

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def pin_clock(app: FastAPI, now: datetime = NOW) -> None:
    app.dependency_overrides[clock] = lambda: now


def sample(
    instance: int | str,
    day: date | str,
    size_mb: float = 100.0,
    database_name: str = "orders",
    **fields: Any,
) -> dict[str, Any]:
    ref = {"instance_id": instance} if isinstance(instance, int) else {"instance_name": instance}
    return {
        **ref,
        "database_name": database_name,
        "collected_date": str(day),
        "size_mb": size_mb,
        **fields,
    }


async def post_samples(client: AsyncClient, *samples: dict[str, Any]) -> Response:
    return await client.post("/v1/size-samples", json={"samples": list(samples)})


async def post_csv(client: AsyncClient, body: str) -> Response:
    return await client.post(
        "/v1/size-samples", content=body.encode(), headers={"content-type": "text/csv"}
    )


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(text(sql), params)


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def table_state(engine: AsyncEngine) -> tuple[int, int, list[str]]:
    """(sample rows, change-log rows, partitions): what a rejected request must leave alone."""
    samples = await scalar(engine, "SELECT count(*) FROM size_samples")
    changes = await scalar(engine, "SELECT count(*) FROM sample_changes")
    partitions = await rows(
        engine,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'size_samples'::regclass ORDER BY 1",
    )
    return samples, changes, [p.relname for p in partitions]


@asynccontextmanager
async def client_for(
    settings: Settings, configure: Callable[[FastAPI], None] = pin_clock
) -> AsyncIterator[AsyncClient]:
    """A client on an app built with other settings (time zone, limits, retention)."""
    app = create_app(settings)
    configure(app)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client,
    ):
        client.headers.update(bearer(await make_key(app.state.sessionmaker, Scope.admin)))
        yield client
