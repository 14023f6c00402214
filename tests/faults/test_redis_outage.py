"""Redis stopped while 5 clients submit jobs: every answer is a 202 or a 503 + Retry-After, the
worker process survives, and after Redis returns (empty, as after a crash) every accepted job
ends terminal with none left queued without a queue entry."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from tests.factories import create_instance
from tests.faults.conftest import (
    PrivateRedis,
    WorkerProcess,
    api_client,
    wait_all_terminal,
    wait_heartbeat,
)
from tests.jobs.conftest import insert_samples

SUBMITTERS = 5
BEFORE_SECONDS = 4.0
OUTAGE_SECONDS = 30.0
AFTER_SECONDS = 6.0
PAUSE_SECONDS = 0.25  # between one submitter's requests
TODAY = date.today()


async def _submitter(
    client: AsyncClient, instance_id: int, stop: asyncio.Event, answers: list[tuple[int, str]]
) -> set[str]:
    accepted: set[str] = set()
    n = 0
    while not stop.is_set():
        end = TODAY - timedelta(days=1 + n % 25)
        n += 1
        body = {
            "periods": ["daily"],
            "instance_ids": [instance_id],
            "start": (end - timedelta(days=3)).isoformat(),
            "end": end.isoformat(),
        }
        response = await client.post("/v1/aggregation-jobs", json=body)
        if response.status_code == 202:
            accepted.add(response.json()["id"])
            answers.append((202, ""))
        elif response.status_code == 503:
            ok = (
                response.headers.get("retry-after", "").isdigit()
                and response.headers["content-type"] == "application/problem+json"
            )
            answers.append((503, "" if ok else response.text))
        else:
            answers.append((response.status_code, response.text))
        await asyncio.sleep(PAUSE_SECONDS)
    return accepted


async def test_redis_stopped_30s_under_5_submitters_loses_no_job_and_the_worker_survives(
    settings: Settings, engine: AsyncEngine, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    run = settings.model_copy(
        update={
            "redis_url": private_redis.url,
            "job_lease_seconds": 5,
            "job_heartbeat_seconds": 0.5,
            "job_max_attempts": 10,
        }
    )
    worker = WorkerProcess(run, tmp_path / "worker.log")
    async with api_client(run) as (_app, client):
        ids = []
        for i in range(SUBMITTERS):
            instance = await create_instance(client, f"pg-{i}")
            await insert_samples(engine, instance["id"], end=TODAY, days=40)
            ids.append(instance["id"])
        pid = worker.start()
        try:
            await wait_heartbeat(engine, pid)
            stop = asyncio.Event()
            answers: list[tuple[int, str]] = []
            submitters = [asyncio.create_task(_submitter(client, i, stop, answers)) for i in ids]
            await asyncio.sleep(BEFORE_SECONDS)
            private_redis.stop()
            await asyncio.sleep(OUTAGE_SECONDS)
            during = Counter(code for code, _ in answers)
            private_redis.start()
            await asyncio.sleep(AFTER_SECONDS)
            stop.set()
            accepted = set().union(*await asyncio.gather(*submitters))
            # Lease 5 s + the sweeper's 15 s period: a job the empty Redis forgot is re-driven.
            statuses = await wait_all_terminal(engine, accepted, timeout=120)
            worker_alive = worker.alive()
        finally:
            worker.stop()
    counts = Counter(code for code, _ in answers)
    figures = (
        f"{counts[202]} x 202, {counts[503]} x 503 ({during[503]} by the end of the outage), "
        f"{len(accepted)} jobs accepted, "
        f"{sum(s not in {'succeeded'} for s in statuses.values())} not succeeded"
    )
    bad = [(code, body) for code, body in answers if code not in {202, 503} or body]
    assert not bad, f"{figures}; answers other than 202 / 503+Retry-After: {bad[:3]}"
    assert during[503] > 0, f"{figures}; the outage produced no 503: was Redis stopped?"
    assert worker_alive, f"{figures}; the worker process exited:\n{worker.tail()}"
    lost = accepted - set(statuses)
    assert not lost, f"{figures}; accepted jobs missing from the ledger: {sorted(lost)[:3]}"
    not_done = {k: v for k, v in statuses.items() if v != "succeeded"}
    assert not not_done, f"{figures}; jobs not succeeded: {list(not_done.items())[:5]}"
    async with engine.connect() as conn:
        queued = await conn.scalar(
            text("SELECT count(*) FROM aggregation_jobs WHERE status IN ('queued', 'running')")
        )
    assert queued == 0, f"{figures}; {queued} jobs still queued or running"
    print(f"FIGURES {figures}")
