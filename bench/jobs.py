"""Job overhead: what the job system adds to the aggregation of a 1,000-instance job.

    .venv/bin/python bench/jobs.py [--instances 1000] [--runs 7] [--poll-delay 0.01]

Creates its own throw-away database, registers the instances with a few days of samples each,
starts a real worker process (``python -m dbsize worker``, as deployed) and submits through the
HTTP app (in-process ASGI). Each run measures:

- the job: wall time from just before the POST until the status long-poll (``?wait=30``,
  woken by the job's NOTIFY) returns `succeeded`;
- its aggregation time: from the first period's start to the last period's end, as the job's
  own PeriodResults record them (``started_at`` + ``duration_ms``);
- job overhead = job - aggregation time (the issue's definition);
- for comparison, the same aggregation called directly right after: ``aggregate_periods`` for
  the same periods, scope and instances with the worker's concurrency, no job system at all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dbsize.aggregation.schemas import ALL_PERIOD_TYPES, AggregationScope, ScopeKind
from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker
from dbsize.jobs.periods import aggregate_periods
from dbsize.keys.bootstrap import create_key
from dbsize.keys.tokens import Scope
from dbsize.main import create_app
from dbsize.migrate import create_and_upgrade, drop_database

SERVER = os.environ.get(
    "DBSIZE_BENCH_DATABASE_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


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
        await conn.execute(text("ANALYZE"))
    await engine.dispose()


@dataclass
class JobTimes:
    total: float
    aggregation: float
    """first period start to last period end, from the job's own PeriodResults"""
    submit: float
    """the POST: validate, insert the job and its records, enqueue"""
    queued: float
    """the POST's answer until the worker's claim (arq's poll, the claim's start)"""
    run: float
    """claim until the final transaction (the ledger's own timestamps)"""
    seen: float
    """the final transaction until the long-poll's answer arrives"""


async def job_run(client: AsyncClient) -> JobTimes:
    started = time.perf_counter()
    response = await client.post("/v1/aggregation-jobs", json={})
    posted = time.perf_counter()
    posted_wall = datetime.now(UTC)
    job_id = response.json()["id"]
    while True:  # long-poll: the API answers when the job's final transaction commits
        body = (await client.get(f"/v1/aggregation-jobs/{job_id}", params={"wait": 30})).json()
        if body["done"]:
            break
    ended = time.perf_counter()
    ended_wall = datetime.now(UTC)
    assert body["status"] == "succeeded", body
    claimed = datetime.fromisoformat(body["started_at"])
    finished = datetime.fromisoformat(body["finished_at"])
    starts = [datetime.fromisoformat(p["started_at"]) for p in body["period_results"]]
    ends = [
        start + timedelta(milliseconds=p["duration_ms"])
        for start, p in zip(starts, body["period_results"], strict=True)
    ]
    return JobTimes(
        total=(ended - started) * 1000,
        aggregation=(max(ends) - min(starts)).total_seconds() * 1000,
        submit=(posted - started) * 1000,
        queued=(claimed - posted_wall).total_seconds() * 1000,
        run=(finished - claimed).total_seconds() * 1000,
        seen=(ended_wall - finished).total_seconds() * 1000,
    )


async def direct_run(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, instance_ids: list[int]
) -> float:
    """The job's aggregation without the job system: same call, periods, scope, concurrency,
    on pooled connections that are as warm as the worker's."""
    today = date.today()
    started = time.perf_counter()
    results = await aggregate_periods(
        sessionmaker,
        ALL_PERIOD_TYPES,
        AggregationScope(kind=ScopeKind.as_of, as_of=today),
        instance_ids,
        job_id=None,
        today=today,
        concurrency=settings.job_period_concurrency,
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert all(r.succeeded for r in results), results
    return elapsed_ms


def start_worker(settings: Settings, poll_delay: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DBSIZE_DATABASE_URL": settings.database_url,
        "DBSIZE_QUEUE_NAME": settings.queue_name,
        "DBSIZE_CRON_ENABLED": "false",
        "DBSIZE_LOG_LEVEL": "WARNING",
        "DBSIZE_WORKER_POLL_DELAY_SECONDS": str(poll_delay),
        "DBSIZE_JOB_PERIOD_CONCURRENCY": str(settings.job_period_concurrency),
    }
    return subprocess.Popen([sys.executable, "-m", "dbsize", "worker"], env=env)


async def main(url: str, args: argparse.Namespace) -> None:
    settings = Settings(
        database_url=url,
        queue_name=f"dbsize-bench-{uuid.uuid4().hex[:8]}",
        cron_enabled=False,
        log_level="WARNING",
        worker_poll_delay_seconds=args.poll_delay,
        job_period_concurrency=args.concurrency,
    )
    worker = None
    try:
        await seed(settings, args.instances, args.days)
        worker = start_worker(settings, args.poll_delay)
        app = create_app(settings)
        instance_ids = list(range(1, args.instances + 1))
        engine = create_engine(settings.database_url, pool_size=4)
        sessionmaker = create_sessionmaker(engine)
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as client,
        ):
            key = await create_key(settings.database_url, name="bench-jobs", scope=Scope.write)
            client.headers["Authorization"] = f"Bearer {key}"
            await job_run(client)  # warm-up: the worker's connections and plans
            await direct_run(sessionmaker, settings, instance_ids)
            pairs = [
                (await job_run(client), await direct_run(sessionmaker, settings, instance_ids))
                for _ in range(args.runs)
            ]
        await engine.dispose()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        await drop_database(url)
    jobs = [job.total for job, _ in pairs]
    spans = [job.aggregation for job, _ in pairs]
    overheads = [job.total - job.aggregation for job, _ in pairs]
    directs = [direct for _, direct in pairs]
    print(
        f"instances={args.instances} days={args.days} runs={args.runs} "
        f"poll_delay={args.poll_delay}s period_concurrency={args.concurrency}"
    )
    for label, values in (
        ("job: submit -> succeeded seen", jobs),
        ("its aggregation (period span)", spans),
        ("job overhead (job - aggregation)", overheads),
        ("same aggregation called directly", directs),
    ):
        print(
            f"{label:<34} ms: median {statistics.median(values):6.1f} "
            f"(min {min(values):6.1f}, max {max(values):6.1f})"
        )
    print("the job's wall time by phase, medians in ms (run includes the aggregation):")
    for phase in ("submit", "queued", "run", "seen"):
        values = [getattr(job, phase) for job, _ in pairs]
        print(f"  {phase:<7} {statistics.median(values):6.1f}")


if __name__ == "__main__":
    defaults = Settings()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--poll-delay", type=float, default=defaults.worker_poll_delay_seconds)
    parser.add_argument("--concurrency", type=int, default=defaults.job_period_concurrency)
    cli_args = parser.parse_args()
    name = f"dbsize_bench_jobs_{uuid.uuid4().hex[:8]}"
    db_url = make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    create_and_upgrade(db_url)  # outside the loop: Alembic's env runs its own asyncio.run
    asyncio.run(main(db_url, cli_args))
