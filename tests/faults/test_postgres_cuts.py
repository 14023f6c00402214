"""PostgreSQL connections cut with ``pg_terminate_backend`` (this run's database only): a worker's
connections cut mid-job make the job retry and succeed; the API's connections cut under
requests give 200s and 503 + Retry-After, never a 500."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import psutil
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from tests.factories import create_instance
from tests.faults.conftest import WorkerProcess, api_client, wait_all_terminal, wait_heartbeat
from tests.jobs.conftest import insert_samples, slow_period

TODAY = date.today()
WORKER_CUTS = 3


def client_ports(pid: int) -> list[int]:
    """Local TCP ports of ``pid``'s connections to PostgreSQL (5432)."""
    return [
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == 5432
    ]


async def terminate(engine: AsyncEngine, ports: list[int]) -> int:
    """Terminate this database's backends serving the given client ports; how many."""
    async with engine.connect() as conn:
        cut = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND client_port = ANY(:ports)"
            ),
            {"ports": ports},
        )
    return int(cut or 0)


async def _cut_mid_period(
    client: AsyncClient, engine: AsyncEngine, job_id: str, pid: int, after_attempt: int
) -> tuple[int, int]:
    """Once an attempt later than ``after_attempt`` runs its weekly period, terminate the
    worker's backends; (that attempt, backends cut). (0, 0) if the job ended first."""
    for _ in range(1200):
        body = (await client.get(f"/v1/aggregation-jobs/{job_id}")).json()
        if body["done"]:
            return 0, 0
        if body["attempt"] > after_attempt and "weekly" in body["progress"]["running_periods"]:
            cut = await terminate(engine, client_ports(pid))
            if cut:
                return body["attempt"], cut
        await asyncio.sleep(0.05)
    raise AssertionError(f"no attempt after {after_attempt} ran its weekly period: {body}")


async def test_worker_connections_cut_3_times_mid_job_is_retried_to_success(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    run = settings.model_copy(
        update={"job_lease_seconds": 5, "job_heartbeat_seconds": 0.5, "job_max_attempts": 10}
    )
    worker = WorkerProcess(run, tmp_path / "worker.log")
    async with api_client(run) as (_app, client):
        for i in range(2):
            instance = await create_instance(client, f"pg-{i}")
            await insert_samples(engine, instance["id"], end=TODAY, days=70)
        await slow_period(engine, "weekly", 0.15)
        pid = worker.start()
        try:
            await wait_heartbeat(engine, pid)
            start = (TODAY - timedelta(days=60)).isoformat()
            response = await client.post(
                "/v1/aggregation-jobs", json={"start": start, "end": TODAY.isoformat()}
            )
            job_id = response.json()["id"]
            cuts: list[tuple[int, int]] = []
            attempt = 0
            for _ in range(WORKER_CUTS):
                attempt, cut = await _cut_mid_period(client, engine, job_id, pid, attempt)
                if not cut:
                    break
                cuts.append((attempt, cut))
            async with engine.begin() as conn:
                await conn.execute(
                    text("DROP TRIGGER test_slow_period ON database_size_aggregations")
                )
            statuses = await wait_all_terminal(engine, {job_id}, timeout=120)
            alive = worker.alive()
        finally:
            worker.stop()
        job = (await client.get(f"/v1/aggregation-jobs/{job_id}")).json()
    figures = (
        f"{len(cuts)} cuts of the worker's connections mid-job, in attempts "
        f"{[a for a, _ in cuts]} ({sum(c for _, c in cuts)} backends), "
        f"job {statuses.get(job_id)} on attempt {job['attempt']}"
    )
    assert len(cuts) == WORKER_CUTS, figures
    assert alive, f"{figures}; the worker exited:\n{worker.tail()}"
    assert statuses[job_id] == "succeeded", f"{figures}: {job}"
    assert job["attempt"] == WORKER_CUTS + 1, figures
    assert job["succeeded_instances"] == 2, figures
    print(f"FIGURES {figures}")


async def test_api_connections_cut_under_requests_answer_503_with_retry_after_never_500(
    settings: Settings, engine: AsyncEngine
) -> None:
    async with api_client(settings) as (_app, client):
        await create_instance(client, "pg-0")
        answers: list[tuple[int, bool]] = []
        stop = asyncio.Event()

        async def reader() -> None:
            while not stop.is_set():
                response = await client.get("/v1/instances")
                answers.append((response.status_code, "retry-after" in response.headers))

        readers = [asyncio.create_task(reader()) for _ in range(5)]
        cut = 0
        for _ in range(20):
            await asyncio.sleep(0.1)
            cut += await terminate(engine, client_ports(os.getpid()))
        stop.set()
        await asyncio.gather(*readers)
    counts = Counter(code for code, _ in answers)
    figures = f"{cut} API backends cut in 20 rounds under 5 readers: {dict(counts)}"
    assert set(counts) <= {200, 503}, figures
    assert all(has_retry for code, has_retry in answers if code == 503), figures
    assert cut > 0, figures
    print(f"FIGURES {figures}")
