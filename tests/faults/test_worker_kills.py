"""20 SIGKILLs of a worker process at random points of 20 jobs, with a second worker alive: every
job ends terminal, every record is settled, the counters add up, and the statistics equal those
of a clean run of the same 20 jobs."""

from __future__ import annotations

import asyncio
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from tests.factories import create_instance
from tests.faults.conftest import (
    WorkerProcess,
    api_client,
    clear_redis_queue,
    snapshot_statistics,
    wait_all_terminal,
    wait_heartbeat,
)
from tests.faults.test_postgres_cuts import client_ports
from tests.jobs.conftest import (
    assert_settled,
    insert_samples,
    slow_period,
    start_worker,
    stop_worker,
)

KILLS = 20
JOBS = 20
TODAY = date.today()


def job_body(k: int) -> dict[str, Any]:
    """Twenty different (never coalesced) range jobs over overlapping windows."""
    end = TODAY - timedelta(days=1 + 3 * k)
    return {"start": (end - timedelta(days=20)).isoformat(), "end": end.isoformat()}


async def _submit_all(client: AsyncClient) -> list[str]:
    ids = []
    for k in range(JOBS):
        response = await client.post("/v1/aggregation-jobs", json=job_body(k))
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


async def _active_jobs(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT count(*) FROM aggregation_jobs WHERE status IN ('queued', 'running')")
            )
            or 0
        )


async def _busy(engine: AsyncEngine, pid: int, timeout: float) -> bool:
    """Until one of the worker ``pid``'s database sessions is in a statement or a transaction
    other than its heartbeat (it is claiming, computing or settling a job), at most ``timeout``
    seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with engine.connect() as conn:
            busy = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND client_port = ANY(:ports) AND state <> 'idle' "
                    "AND query NOT LIKE '%worker_heartbeats%'"
                ),
                {"ports": client_ports(pid)},
            )
        if busy:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_20_sigkills_across_20_jobs_with_a_second_worker_match_a_clean_run(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    run = settings.model_copy(
        update={
            "job_lease_seconds": 5,
            "job_heartbeat_seconds": 0.5,
            "job_max_attempts": 20,
            "worker_max_jobs": 1,  # one job at a time: the 20 jobs span the 20 kills
        }
    )
    rng = random.Random(16)
    async with api_client(run) as (_app, client):
        for i in range(3):
            instance = await create_instance(client, f"pg-{i}")
            await insert_samples(
                engine, instance["id"], databases=("app", "audit"), end=TODAY, days=100
            )
        # Each job spends ~1 s writing its weekly rows: kills land in claims, periods and final
        # transactions alike.
        await slow_period(engine, "weekly", 0.1)
        survivor = WorkerProcess(run, tmp_path / "survivor.log")
        await wait_heartbeat(engine, survivor.start())
        victim = WorkerProcess(run, tmp_path / "victim.log")
        kills = 0
        try:
            ids = await _submit_all(client)
            rounds = 1
            mid_job = 0
            while kills < KILLS:
                if await _active_jobs(engine) == 0:
                    # Keep both workers busy until every kill is spent: the same 20 jobs again
                    # (new ids) change no statistic, so the clean run below still compares.
                    ids += await _submit_all(client)
                    rounds += 1
                pid = victim.start()
                await wait_heartbeat(engine, pid)
                if await _busy(engine, pid, timeout=20):
                    await asyncio.sleep(rng.uniform(0.0, 1.2))
                    mid_job += 1
                victim.kill()
                kills += 1
            # The survivor's sweeper re-queues what the kills left running (lease 5 s, every 15 s).
            statuses = await wait_all_terminal(engine, set(ids), timeout=180)
            survivor_alive = survivor.alive()
        finally:
            victim.stop()
            survivor.stop()
        async with engine.connect() as conn:
            attempts = (
                await conn.execute(
                    text(
                        "SELECT sum(attempt - 1), count(*) FILTER (WHERE attempt > 1) "
                        "FROM aggregation_jobs"
                    )
                )
            ).one()
            unsettled = await conn.scalar(
                text(
                    "SELECT count(*) FROM aggregation_job_instances "
                    "WHERE status IN ('pending', 'running')"
                )
            )
        figures = (
            f"{kills} SIGKILLs ({mid_job} while the victim was busy with a job), "
            f"{len(ids)} jobs ({rounds} rounds of 20), {attempts[1]} jobs re-run "
            f"({attempts[0]} extra attempts), "
            f"{sum(s != 'succeeded' for s in statuses.values())} not succeeded"
        )
        assert survivor_alive, figures
        assert kills == KILLS, figures
        assert attempts[1] >= 1, f"{figures}; no kill interrupted a job"
        assert all(s == "succeeded" for s in statuses.values()), f"{figures}: {statuses}"
        assert unsettled == 0, f"{figures}; {unsettled} records unsettled"
        for job_id in ids:
            job = (await client.get(f"/v1/aggregation-jobs/{job_id}")).json()
            assert_settled(job)
            assert job["succeeded_instances"] == 3, figures
        killed = await snapshot_statistics(engine)

        # The clean run: the same 20 jobs on empty statistics with one healthy worker.
        async with engine.begin() as conn:
            await conn.execute(
                text("DROP TRIGGER IF EXISTS test_slow_period ON database_size_aggregations")
            )
            await conn.execute(
                text(
                    "TRUNCATE database_size_aggregations, instance_size_aggregations, "
                    "aggregation_refresh_state, aggregation_coverage"
                )
            )
        await clear_redis_queue(run)
        worker, task = await start_worker(run)
        try:
            clean_ids = await _submit_all(client)
            clean = await wait_all_terminal(engine, set(clean_ids), timeout=180)
        finally:
            await stop_worker(worker, task)
        assert all(s == "succeeded" for s in clean.values()), clean
        assert await snapshot_statistics(engine) == killed, f"{figures}; statistics differ"
        print(f"FIGURES {figures}; statistics equal a clean run")
