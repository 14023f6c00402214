"""Job tests run a real arq worker in the test's event loop, on the real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from arq.worker import Worker
from httpx import AsyncClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from dbsize.logging import configure_logging
from dbsize.worker.settings import build_worker

TERMINAL = {"succeeded", "partial", "failed", "cancelled"}


@pytest.fixture(autouse=True)
async def _empty_queue(settings: Settings) -> AsyncIterator[None]:
    """Each test starts with no arq jobs, results or cron locks of this run's queue."""
    yield
    redis = Redis.from_url(settings.redis_url)
    try:
        keys = [settings.queue_name]
        async for key in redis.scan_iter(match="arq:*"):
            keys.append(key)
        await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture(scope="session", autouse=True)
def _structured_logs() -> None:
    configure_logging("console", "INFO")


async def start_worker(settings: Settings, **overrides: Any) -> tuple[Worker, asyncio.Task[None]]:
    worker = build_worker(settings, handle_signals=False, **overrides)
    task = asyncio.create_task(worker.async_run())
    return worker, task


async def stop_worker(worker: Worker, task: asyncio.Task[None]) -> None:
    # A test may end as soon as a job's final transaction commits, while arq is still storing
    # its result: close() cancels tasks still running, so let them end first.
    running = [t for t in worker.tasks.values() if not t.done()]
    if running:
        await asyncio.wait(running, timeout=10)
    await worker.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    worker, task = await start_worker(settings)
    yield worker
    await stop_worker(worker, task)


async def insert_samples(
    engine: AsyncEngine,
    instance_id: int,
    *,
    databases: Sequence[str] = ("app",),
    end: date,
    days: int,
    base_mb: float = 100.0,
) -> None:
    """Daily samples for `days` days ending `end`, growing 1 MB a day."""
    start = end - timedelta(days=days - 1)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "SELECT dbsize_ensure_sample_partition(d::date) FROM generate_series("
                "date_trunc('month', CAST(:start AS date)), CAST(:end AS date), "
                "interval '1 month') d"
            ),
            {"start": start, "end": end},
        )
        await conn.execute(
            text(
                "INSERT INTO size_samples (instance_id, database_name, collected_date, size_mb) "
                "SELECT :instance_id, db, d::date, :base + (d::date - CAST(:start AS date)) "
                "FROM unnest(CAST(:dbs AS text[])) AS db, "
                "generate_series(CAST(:start AS date), CAST(:end AS date), interval '1 day') d"
            ),
            {
                "instance_id": instance_id,
                "dbs": list(databases),
                "start": start,
                "end": end,
                "base": base_mb,
            },
        )


async def wait_for_job(client: AsyncClient, job_id: str, timeout: float = 30) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/aggregation-jobs/{job_id}")).json()
        if body["status"] in TERMINAL:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} still {body['status']} after {timeout} s: {body}")
        await asyncio.sleep(0.05)


async def wait_for_status(
    client: AsyncClient, job_id: str, wanted: str, timeout: float = 20
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/aggregation-jobs/{job_id}")).json()
        if body["status"] == wanted:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} never became {wanted}: {body}")
        await asyncio.sleep(0.02)


async def fail_period(engine: AsyncEngine, period_type: str) -> None:
    """Inject a failure: a trigger that makes the per-database write of one period type raise."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"""
                CREATE OR REPLACE FUNCTION test_fail_period() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.period_type = '{period_type}' THEN
                        RAISE EXCEPTION 'injected failure for {period_type}';
                    END IF;
                    RETURN NEW;
                END $$
                """
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER test_fail_period BEFORE INSERT OR UPDATE "
                "ON database_size_aggregations FOR EACH ROW EXECUTE FUNCTION test_fail_period()"
            )
        )


async def slow_period(engine: AsyncEngine, period_type: str, seconds_per_row: float) -> None:
    """Make one period type's per-database write sleep for every row it writes."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"""
                CREATE OR REPLACE FUNCTION test_slow_period() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.period_type = '{period_type}' THEN
                        PERFORM pg_sleep({seconds_per_row});
                    END IF;
                    RETURN NEW;
                END $$
                """
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER test_slow_period BEFORE INSERT OR UPDATE "
                "ON database_size_aggregations FOR EACH ROW EXECUTE FUNCTION test_slow_period()"
            )
        )


@pytest.fixture(autouse=True)
async def _drop_injected_faults(engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    async with engine.begin() as conn:
        await conn.execute(
            text("DROP TRIGGER IF EXISTS test_fail_period ON database_size_aggregations")
        )
        await conn.execute(
            text("DROP TRIGGER IF EXISTS test_slow_period ON database_size_aggregations")
        )


def assert_settled(job: dict[str, Any]) -> None:
    """The invariant every terminal job satisfies."""
    assert job["done"] is True
    assert job["total_instances"] == (
        job["succeeded_instances"]
        + job["failed_instances"]
        + job["skipped_instances"]
        + job["cancelled_instances"]
    )


logging.getLogger("arq").setLevel(logging.WARNING)
