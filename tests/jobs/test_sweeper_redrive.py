"""The sweeper re-drives a queued job whose arq id is held in progress by a worker that died
between arq handing it the job and the ledger claim (arq alone would block it for hours)."""

from __future__ import annotations

import asyncio
import uuid

from arq.constants import in_progress_key_prefix
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from dbsize.db import create_sessionmaker
from dbsize.jobs.queue import arq_job_id
from dbsize.jobs.sweeper import sweep
from dbsize.redis import create_arq_redis
from tests.jobs.conftest import start_worker, stop_worker, wait_for_job
from tests.jobs.test_job_lifecycle import fleet, submit

LEASE = 5


class TestRedriveFromADeadWorker:
    async def test_in_progress_id_of_an_unclaimed_job_is_cleared_and_the_job_runs(
        self, client: AsyncClient, engine: AsyncEngine, settings: Settings
    ) -> None:
        await fleet(client, engine, with_samples=1)
        stuck = await submit(client, {"periods": ["daily"]})
        waiting = await submit(client, {"periods": ["weekly"]})
        arq = create_arq_redis(settings.redis_url, settings.queue_name)
        try:
            stuck_arq_id = arq_job_id(uuid.UUID(stuck["id"]), stuck["attempt"])
            # What a worker SIGKILLed right after picking the job leaves behind.
            await arq.psetex(in_progress_key_prefix + stuck_arq_id, 3_600_000, b"1")
            waiting_arq_id = arq_job_id(uuid.UUID(waiting["id"]), waiting["attempt"])
            score = await arq.zscore(settings.queue_name, waiting_arq_id)
            await asyncio.sleep(LEASE + 0.5)
            report = await sweep(
                create_sessionmaker(engine),
                arq,
                settings.model_copy(update={"job_lease_seconds": LEASE}),
            )
            assert report.redriven == [uuid.UUID(stuck["id"])]
            assert not await arq.exists(in_progress_key_prefix + stuck_arq_id)
            # A job only waiting its turn keeps its place in the queue.
            assert await arq.zscore(settings.queue_name, waiting_arq_id) == score
        finally:
            await arq.aclose()
        worker, task = await start_worker(settings)
        try:
            done = await wait_for_job(client, stuck["id"])
        finally:
            await stop_worker(worker, task)
        assert done["status"] == "succeeded"
