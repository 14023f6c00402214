"""Job overhead: submit -> `succeeded` for a 1,000-instance job, minus the aggregation time.

    .venv/bin/python bench/jobs.py [--instances 1000] [--runs 7]

Creates its own throw-away database, registers the instances with a few days of samples each,
runs a real arq worker in this process and submits through the HTTP app (in-process ASGI).
Overhead = wall time from just before the POST until a 5 ms poll sees the terminal status,
minus the sum of the PeriodResults' own durations. The 5 ms poll adds up to 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dbsize.config import Settings
from dbsize.db import create_engine
from dbsize.main import create_app
from dbsize.migrate import create_and_upgrade, drop_database
from dbsize.worker.settings import build_worker

SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


async def seed(settings: Settings, instances: int, days: int) -> None:
    engine = create_engine(settings.database_url)
    end = date.today()
    start = end - timedelta(days=days - 1)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO instances (name, db_type) "
                "SELECT 'bench-' || g, 'postgresql' FROM generate_series(1, :n) g"
            ),
            {"n": instances},
        )
        await conn.execute(
            text(
                "SELECT dbsize_ensure_sample_partition(d::date) FROM generate_series("
                "CAST(:start AS date), CAST(:end AS date), interval '1 month') d"
            ),
            {"start": start.replace(day=1), "end": end},
        )
        await conn.execute(
            text(
                "INSERT INTO size_samples (instance_id, database_name, collected_date, size_mb) "
                "SELECT i.id, 'app', d::date, 100 + i.id "
                "FROM instances i, generate_series(CAST(:start AS date), CAST(:end AS date), "
                "interval '1 day') d"
            ),
            {"start": start, "end": end},
        )
    await engine.dispose()


async def one_run(client: AsyncClient) -> tuple[float, float, float]:
    started = time.perf_counter()
    response = await client.post("/v1/aggregation-jobs", json={})
    job_id = response.json()["id"]
    while True:
        body = (await client.get(f"/v1/aggregation-jobs/{job_id}")).json()
        if body["done"]:
            break
        await asyncio.sleep(0.005)
    wall_ms = (time.perf_counter() - started) * 1000
    assert body["status"] == "succeeded", body
    aggregation_ms = sum(p["duration_ms"] for p in body["period_results"])
    return wall_ms, aggregation_ms, wall_ms - aggregation_ms


async def main(url: str, instances: int, runs: int, days: int) -> None:
    settings = Settings(
        database_url=url, queue_name=f"dbsize-bench-{uuid.uuid4().hex[:8]}", cron_enabled=False
    )
    try:
        await seed(settings, instances, days)
        app = create_app(settings)
        worker = build_worker(settings, handle_signals=False)
        worker_task = asyncio.create_task(worker.async_run())
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as client,
        ):
            await one_run(client)  # warm-up: connections, plans
            results = [await one_run(client) for _ in range(runs)]
        await worker.close()
        worker_task.cancel()
    finally:
        await drop_database(url)
    walls, aggs, overheads = zip(*results, strict=True)
    print(
        f"instances={instances} days={days} runs={runs} "
        f"poll_delay={settings.worker_poll_delay_seconds}s"
    )
    print(
        f"submit->succeeded wall ms: median {statistics.median(walls):.1f} "
        f"(min {min(walls):.1f}, max {max(walls):.1f})"
    )
    print(f"aggregation ms (sum of 4 PeriodResults): median {statistics.median(aggs):.1f}")
    print(
        f"job overhead ms: median {statistics.median(overheads):.1f} "
        f"(min {min(overheads):.1f}, max {max(overheads):.1f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    name = f"dbsize_bench_jobs_{uuid.uuid4().hex[:8]}"
    url = make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    create_and_upgrade(url)  # outside the loop: Alembic's env runs its own asyncio.run
    asyncio.run(main(url, args.instances, args.runs, args.days))
