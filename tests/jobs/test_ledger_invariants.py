"""The database itself refuses the states the old system could reach."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine


async def make_job(engine: AsyncEngine, records: int = 2) -> uuid.UUID:
    job_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO aggregation_jobs (id, trigger, scope_kind, request, periods, "
                "dedup_key, periods_total, max_attempts) "
                "VALUES (:id, 'api', 'as_of', '{}', '{daily}', :key, 1, 1)"
            ),
            {"id": job_id, "key": str(job_id)},
        )
        for i in range(1, records + 1):
            await conn.execute(
                text(f"INSERT INTO instances (name, db_type) VALUES ('i-{job_id}-{i}', 'mysql')")
            )
        await conn.execute(
            text(
                "INSERT INTO aggregation_job_instances (job_id, instance_id, instance_name) "
                "SELECT :id, id, name FROM instances WHERE name LIKE :prefix"
            ),
            {"id": job_id, "prefix": f"i-{job_id}-%"},
        )
        await conn.execute(
            text("UPDATE aggregation_jobs SET total_instances = :n WHERE id = :id"),
            {"id": job_id, "n": records},
        )
    return job_id


async def execute(engine: AsyncEngine, sql: str, job_id: uuid.UUID) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), {"id": job_id})


FAIL_RECORDS = (
    "UPDATE aggregation_job_instances SET status = 'failed', error = 'x' WHERE job_id = :id"
)
SETTLE = "UPDATE aggregation_job_instances SET status = 'succeeded' WHERE job_id = :id"
FINISH = (
    "UPDATE aggregation_jobs SET status = 'succeeded', finished_at = now(), "
    "succeeded_instances = total_instances WHERE id = :id"
)


class TestLedgerInvariants:
    async def test_job_cannot_end_with_pending_records(self, engine: AsyncEngine) -> None:
        job_id = await make_job(engine)
        with pytest.raises(DBAPIError, match="still pending or running"):
            await execute(engine, FINISH, job_id)

    async def test_counters_must_equal_record_counts(self, engine: AsyncEngine) -> None:
        job_id = await make_job(engine)
        await execute(engine, SETTLE, job_id)
        with pytest.raises(DBAPIError, match="counters do not match"):
            await execute(
                engine,
                "UPDATE aggregation_jobs SET status = 'succeeded', finished_at = now(), "
                "succeeded_instances = 8, total_instances = 8 WHERE id = :id",
                job_id,
            )

    async def test_terminal_status_never_changes(self, engine: AsyncEngine) -> None:
        job_id = await make_job(engine)
        await execute(engine, SETTLE, job_id)
        await execute(engine, FINISH, job_id)
        with pytest.raises(DBAPIError, match="terminal"):
            await execute(
                engine, "UPDATE aggregation_jobs SET status = 'running' WHERE id = :id", job_id
            )

    async def test_records_of_terminal_job_never_change(self, engine: AsyncEngine) -> None:
        job_id = await make_job(engine)
        await execute(engine, SETTLE, job_id)
        await execute(engine, FINISH, job_id)
        with pytest.raises(DBAPIError, match="cannot change"):
            await execute(
                engine,
                FAIL_RECORDS,
                job_id,
            )

    async def test_settled_record_cannot_flip(self, engine: AsyncEngine) -> None:
        job_id = await make_job(engine)
        await execute(engine, SETTLE, job_id)
        with pytest.raises(DBAPIError, match="cannot change"):
            await execute(
                engine,
                FAIL_RECORDS,
                job_id,
            )

    async def test_failed_record_must_say_why(self, engine: AsyncEngine) -> None:
        job_id = await make_job(engine)
        with pytest.raises(DBAPIError, match="failed_has_periods_or_error"):
            await execute(
                engine,
                "UPDATE aggregation_job_instances SET status = 'failed' WHERE job_id = :id",
                job_id,
            )

    async def test_only_one_active_job_per_dedup_key(self, engine: AsyncEngine) -> None:
        job_id = await make_job(engine, records=0)
        with pytest.raises(DBAPIError, match="uq_aggregation_jobs_active_dedup_key"):
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO aggregation_jobs (id, trigger, scope_kind, request, periods, "
                        "dedup_key, periods_total, max_attempts) "
                        "VALUES (gen_random_uuid(), 'api', 'as_of', '{}', '{daily}', :key, 1, 1)"
                    ),
                    {"key": str(job_id)},
                )
