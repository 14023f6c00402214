"""A worker SIGKILLed mid-collection; the decision rules; the inventory across days."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import date
from decimal import Decimal

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize.collection.collectors import DatabaseSize, Measure
from dbsize.collection.repository import CollectionRepository
from dbsize.collection.service import RecordCounts, aggregation_follows, collection_status
from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.jobs.models import JobStatus
from dbsize.jobs.sweeper import sweep
from dbsize.redis import create_arq_redis
from tests.collection.helpers import (
    pg_instance,
    records,
    samples,
    submit_collection,
    wait_collection,
    wait_record,
)
from tests.collection.servers import silent_server
from tests.jobs.conftest import assert_settled, start_worker, stop_worker


class TestWorkerKilledMidCollection:
    async def test_sweeper_settles_it_and_no_instance_is_half_ingested(
        self, client: AsyncClient, engine: AsyncEngine, settings: Settings, sessionmaker: object
    ) -> None:
        env = {
            **os.environ,
            "DBSIZE_DATABASE_URL": settings.database_url,
            "DBSIZE_REDIS_URL": settings.redis_url,
            "DBSIZE_QUEUE_NAME": settings.queue_name,
            "DBSIZE_CRON_ENABLED": "false",
            "DBSIZE_COLLECT_CONCURRENCY": "1",
            "DBSIZE_JOB_HEARTBEAT_SECONDS": "0.5",
            "DBSIZE_LOG_FORMAT": "json",
        }
        async with silent_server() as port:
            first = await pg_instance(client, "collected-first")
            stuck = await pg_instance(client, "stuck", port=port, connect_timeout_seconds=60)
            doomed = subprocess.Popen(
                [sys.executable, "-m", "dbsize", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                job = await submit_collection(client, [first["id"], stuck["id"]])
                await wait_record(client, job["id"], first["id"], "succeeded", timeout=60)
                await wait_collection(client, job["id"], {"running"})
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(10)
            finally:
                if doomed.poll() is None:
                    doomed.kill()
        before = await samples(client, first["id"])
        # The heartbeat stops with the worker; once it is older than the lease, the sweeper
        # re-queues the job, and a healthy worker reads only the unsettled instance again.
        lease = 2
        await asyncio.sleep(lease + 1)
        arq = create_arq_redis(settings.redis_url, settings.queue_name)
        try:
            report = await sweep(
                sessionmaker,  # type: ignore[arg-type]
                arq,
                settings.model_copy(update={"job_lease_seconds": lease}),
            )
        finally:
            await arq.aclose()
        assert report.requeued == [__import__("uuid").UUID(job["id"])]
        worker, task = await start_worker(settings)
        try:
            done = await wait_collection(client, job["id"], timeout=60)
        finally:
            await stop_worker(worker, task)
        assert_settled(done)
        assert (done["status"], done["attempt"]) == ("partial", 2)
        by_instance = await records(client, job["id"])
        assert by_instance[first["id"]]["status"] == "succeeded"
        assert by_instance[stuck["id"]]["status"] == "failed"  # the silent server is gone now
        assert await samples(client, first["id"]) == before
        assert len(before) == by_instance[first["id"]]["databases"]
        assert await samples(client, stuck["id"]) == {}
        async with engine.connect() as conn:
            changes = await conn.scalar(
                text("SELECT count(*) FROM sample_changes WHERE instance_id = :id"),
                {"id": first["id"]},
            )
        assert changes in (0, 1)  # one ingestion, unless an aggregation consumed it already


class TestCollectionStatus:
    @pytest.mark.parametrize(
        ("counts", "cancelled", "expected"),
        [
            (RecordCounts(succeeded=3), False, JobStatus.succeeded),
            (RecordCounts(succeeded=2, skipped=1), False, JobStatus.succeeded),
            (RecordCounts(skipped=2), False, JobStatus.succeeded),
            (RecordCounts(), False, JobStatus.succeeded),
            (RecordCounts(succeeded=1, failed=1), False, JobStatus.partial),
            (RecordCounts(failed=2, skipped=1), False, JobStatus.failed),
            (RecordCounts(succeeded=5), True, JobStatus.cancelled),
        ],
    )
    def test_status_follows_from_the_records(
        self, counts: RecordCounts, cancelled: bool, expected: JobStatus
    ) -> None:
        assert collection_status(counts, cancelled=cancelled) is expected

    @pytest.mark.parametrize(
        ("status", "collected", "expected"),
        [
            (JobStatus.succeeded, [1], True),
            (JobStatus.partial, [1, 2], True),
            (JobStatus.succeeded, [], False),
            (JobStatus.failed, [], False),
            (JobStatus.cancelled, [1], False),
        ],
    )
    def test_aggregation_follows_a_collection_that_ingested(
        self, status: JobStatus, collected: list[int], expected: bool
    ) -> None:
        assert aggregation_follows(status, collected) is expected


def _sizes(*names: str) -> list[DatabaseSize]:
    return [DatabaseSize(name, 1048576, Measure.database_files) for name in names]


class TestInventory:
    async def test_first_seen_last_seen_and_missing_since_across_days(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        instance = await pg_instance(client, "inventory")
        days = [date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3), date(2026, 12, 4)]
        seen_each_day = [("a", "b"), ("a", "b", "c"), ("a", "c"), ("a", "b")]
        for day, names in zip(days, seen_each_day, strict=True):
            async with session_scope(sessionmaker) as session:
                await CollectionRepository(session).record_inventory(
                    instance["id"], day, _sizes(*names)
                )
        async with session_scope(sessionmaker) as session:
            rows = await CollectionRepository(session).inventory(instance["id"])
        assert [
            (r.database_name, r.first_seen_on, r.last_seen_on, r.missing_since) for r in rows
        ] == [
            ("a", days[0], days[3], None),
            ("b", days[0], days[3], None),  # back after a day away: no longer missing
            ("c", days[1], days[2], days[3]),
        ]
        assert rows[0].last_size_mb == Decimal("1.000")
        response = await client.get(f"/v1/instances/{instance['id']}/databases")
        assert response.json()[2] == {
            "database_name": "c",
            "first_seen_on": "2026-12-02",
            "last_seen_on": "2026-12-03",
            "last_size_mb": 1.0,
            "missing_since": "2026-12-04",
        }

    async def test_unknown_instance_is_404(self, client: AsyncClient) -> None:
        assert (await client.get("/v1/instances/999999/databases")).status_code == 404


class TestCollectionCron:
    async def test_two_workers_on_one_tick_make_exactly_one_collection_job(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        from datetime import UTC, datetime

        from dbsize.db import create_engine, create_sessionmaker
        from dbsize.jobs.runner import JobRunner
        from dbsize.worker.tasks import scheduled_aggregation, scheduled_collection

        active = await pg_instance(client, "nightly")
        await pg_instance(client, "opted-out", collect=False)
        fixed = datetime(2026, 11, 23, 3, 0, 1, tzinfo=UTC)
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
            job_ids = await asyncio.gather(*(scheduled_collection(ctx) for ctx in contexts))
            job_ids.append(await scheduled_collection(contexts[0]))
            # The aggregation cron's tick of the same instant is another kind's: its own job.
            aggregation_id = await scheduled_aggregation(contexts[0])
        finally:
            for ctx in contexts:
                await ctx["redis"].aclose()
                await ctx["engine"].dispose()
        assert len(set(job_ids)) == 1
        assert aggregation_id != job_ids[0]
        jobs = (await client.get("/v1/collection-jobs", params={"trigger": "cron"})).json()
        assert [job["id"] for job in jobs["items"]] == [job_ids[0]]
        assert jobs["items"][0]["request"]["instance_count"] == 1
        records = (await client.get(jobs["items"][0]["links"]["instances"])).json()["items"]
        assert [record["instance_id"] for record in records] == [active["id"]]

    def test_cron_is_registered_only_when_enabled(self, settings: Settings) -> None:
        from datetime import time

        from dbsize.worker.settings import build_worker

        def names(**changes: object) -> set[str]:
            worker = build_worker(settings.model_copy(update=changes), handle_signals=False)
            return {job.name for job in worker.cron_jobs}

        at_four = {"collect_cron_time": time(4, 30), "collect_cron_enabled": True}
        assert "cron:scheduled_collection" in names(cron_enabled=True, **at_four)
        assert "cron:scheduled_collection" not in names(
            cron_enabled=True, collect_cron_enabled=False
        )
        assert "cron:scheduled_collection" not in names(cron_enabled=False)
