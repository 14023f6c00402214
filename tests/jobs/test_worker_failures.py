"""Workers die, several run at once, Redis blinks: the ledger still tells the truth."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker
from dbsize.jobs.runner import JobRunner
from dbsize.jobs.sweeper import sweep
from dbsize.redis import create_arq_redis
from dbsize.worker.tasks import scheduled_aggregation
from tests.jobs.conftest import (
    assert_settled,
    slow_period,
    start_worker,
    stop_worker,
    wait_for_job,
    wait_for_status,
)
from tests.jobs.test_job_lifecycle import fleet, submit


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DBSIZE_DATABASE_URL": settings.database_url,
        "DBSIZE_REDIS_URL": settings.redis_url,
        "DBSIZE_QUEUE_NAME": settings.queue_name,
        "DBSIZE_CRON_ENABLED": "false",
        "DBSIZE_LOG_FORMAT": "json",
        **extra,
    }


class TestWorkerKilled:
    async def test_sigkill_mid_job_is_rerun_to_success_within_the_lease(
        self, client: AsyncClient, engine: AsyncEngine, settings: Settings
    ) -> None:
        await fleet(client, engine, with_samples=2)
        await slow_period(engine, "weekly", 1.0)
        lease = 5
        env = worker_env(
            settings, DBSIZE_JOB_LEASE_SECONDS=str(lease), DBSIZE_JOB_HEARTBEAT_SECONDS="0.5"
        )
        doomed = subprocess.Popen(
            [sys.executable, "-m", "dbsize", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            job = await submit(client)
            await wait_for_status(client, job["id"], "running", timeout=30)
            body = await wait_for_period(client, job["id"], "weekly")
            assert body["status"] == "running"
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            killed_at = time.monotonic()
        finally:
            if doomed.poll() is None:
                doomed.kill()
        async with engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(text("DROP TRIGGER test_slow_period ON database_size_aggregations"))
        # A healthy worker (its sweeper runs at start-up and every 15 s) takes over. It starts
        # once the dead worker's lease has run out, so its start-up sweep re-drives the job: the
        # takeover then does not hang on where the next 15 s sweep tick falls, which made this
        # test miss its bound on a loaded machine.
        await asyncio.sleep(max(0.0, lease + 0.5 - (time.monotonic() - killed_at)))
        lease_settings = settings.model_copy(update={"job_lease_seconds": lease})
        worker, task = await start_worker(lease_settings)
        try:
            final = await wait_for_job(client, job["id"], timeout=lease + 20)
        finally:
            await stop_worker(worker, task)
        assert final["status"] == "succeeded"
        assert final["attempt"] == 2
        assert_settled(final)
        assert time.monotonic() - killed_at < lease + 20

    async def test_stale_job_without_attempts_left_ends_failed_with_records_settled(
        self, client: AsyncClient, engine: AsyncEngine, settings: Settings
    ) -> None:
        await fleet(client, engine, with_samples=2, without=1)
        job = await submit(client)
        from sqlalchemy import text

        # Simulate a worker that claimed the job on its last attempt and died.
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE aggregation_jobs SET status = 'running', attempt = max_attempts, "
                    "lease_token = gen_random_uuid(), heartbeat_at = now() - interval '10 minutes' "
                    "WHERE id = :id"
                ),
                {"id": job["id"]},
            )
            await conn.execute(
                text("UPDATE aggregation_job_instances SET status = 'running' WHERE job_id = :id"),
                {"id": job["id"]},
            )
        sessionmaker = create_sessionmaker(engine)
        arq = create_arq_redis(settings.redis_url, settings.queue_name)
        try:
            report = await sweep(sessionmaker, arq, settings)
        finally:
            await arq.aclose()
        assert [str(j) for j in report.failed] == [job["id"]]
        final = (await client.get(f"/v1/aggregation-jobs/{job['id']}")).json()
        assert final["status"] == "failed"
        assert final["failed_instances"] == 3
        assert_settled(final)
        assert "worker lost" in final["error"]["detail"]


async def wait_for_period(client: AsyncClient, job_id: str, period: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await client.get(f"/v1/aggregation-jobs/{job_id}")).json()
        if period in body["progress"]["running_periods"]:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"job never reached {period}")


class TestCron:
    async def test_two_workers_on_one_tick_make_exactly_one_job(
        self, client: AsyncClient, engine: AsyncEngine, settings: Settings
    ) -> None:
        await fleet(client, engine, with_samples=1)
        fixed = datetime(2026, 11, 23, 4, 0, 1, tzinfo=UTC)
        contexts = []
        for _ in range(2):  # two workers: separate engines, same database and Redis
            worker_engine = create_engine(settings.database_url, pool_size=2)
            sm = create_sessionmaker(worker_engine)
            contexts.append(
                {
                    "settings": settings,
                    "sessionmaker": sm,
                    "engine": worker_engine,
                    "redis": create_arq_redis(settings.redis_url, settings.queue_name),
                    "runner": JobRunner(worker_engine, sm, settings, clock=lambda: fixed),
                }
            )
        try:
            job_ids = await asyncio.gather(*(scheduled_aggregation(ctx) for ctx in contexts))
            # A later run of the same tick (a restarted worker) does not add one either.
            job_ids.append(await scheduled_aggregation(contexts[0]))
        finally:
            for ctx in contexts:
                await ctx["redis"].aclose()
                await ctx["engine"].dispose()
        assert len(set(job_ids)) == 1
        jobs = (await client.get("/v1/aggregation-jobs", params={"trigger": "cron"})).json()[
            "items"
        ]
        assert len(jobs) == 1
        assert jobs[0]["request"]["scope"] == "incremental"
