"""Collection benchmark: one collection job of 200 instances (the local PostgreSQL and MariaDB
registered many times), at collect concurrency 1, 8 and 32.

    flock /tmp/dbsize-bench.lock .venv/bin/python bench/collection.py [--instances 200] [--runs 3]

Creates its own throw-away database, registers half the instances as the local PostgreSQL
(127.0.0.1:5432, postgres) and half as the local MariaDB (127.0.0.1:3306, root), submits each job
through the service the API uses (``JobService.submit_collection``) and runs it with the worker's
own ``JobRunner`` in this process (as ``dbsize worker`` does, without arq's polling). Before every
run the samples, the change log and the inventory are emptied and VACUUM ANALYZEd, so every run
ingests the same rows into the same state; one unmeasured warm-up run comes first.

Per run it reports the job's wall time (claim to final commit) and the ingestion's share: the
time spent in the instances' ingestion transactions (fence + samples through the ingestion path
+ inventory + record) divided by the time spent per instance (reading its server + that
transaction), summed over the instances.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dbsize.collection import runner as collection_runner
from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.jobs.models import Trigger
from dbsize.jobs.runner import JobRunner
from dbsize.jobs.service import JobService
from dbsize.migrate import create_and_upgrade, drop_database

SERVER = os.environ.get(
    "DBSIZE_BENCH_DATABASE_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


class Timings:
    """Wall-clock seconds of every instance's collector call and ingestion transaction."""

    def __init__(self) -> None:
        self.collect: list[float] = []
        self.ingest: list[float] = []

    def install(self) -> None:
        original_ingest = collection_runner.CollectionRun._ingest
        original_collector_for = collection_runner.collector_for
        timings = self

        async def timed_ingest(run: Any, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                await original_ingest(run, *args, **kwargs)
            finally:
                timings.ingest.append(time.perf_counter() - started)

        class TimedCollector:
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            async def collect(self, target: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await self.inner.collect(target)
                finally:
                    timings.collect.append(time.perf_counter() - started)

        collection_runner.CollectionRun._ingest = timed_ingest  # type: ignore[method-assign]
        collection_runner.collector_for = lambda db_type: TimedCollector(  # type: ignore[assignment]
            original_collector_for(db_type)
        )

    def reset(self) -> None:
        self.collect.clear()
        self.ingest.clear()


async def register(settings: Settings, instances: int) -> None:
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO instances (name, db_type, host, port, username, tls_mode) "
                    "SELECT 'bench-' || g, CASE WHEN g % 2 = 0 THEN 'postgresql' ELSE 'mysql' END, "
                    "'127.0.0.1', CASE WHEN g % 2 = 0 THEN 5432 ELSE 3306 END, "
                    "CASE WHEN g % 2 = 0 THEN 'postgres' ELSE 'root' END, 'disable' "
                    "FROM generate_series(1, :n) AS g"
                ),
                {"n": instances},
            )
    finally:
        await engine.dispose()


async def reset_state(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("TRUNCATE size_samples, sample_changes, instance_databases"))
            await conn.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()


async def one_run(settings: Settings, timings: Timings) -> dict[str, Any]:
    await reset_state(settings)
    engine = create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with session_scope(sessionmaker) as session:
            submission = await JobService(session, settings).submit_collection(
                None, trigger=Trigger.cli
            )
        timings.reset()
        started = time.perf_counter()
        outcome = await JobRunner(engine, sessionmaker, settings).run(
            submission.job.id, final_try=True
        )
        wall = time.perf_counter() - started
        async with engine.connect() as conn:
            samples = await conn.scalar(text("SELECT count(*) FROM size_samples"))
            # The aggregation it submitted is not run here: drop it so the next run is alike.
            await conn.execute(text("DELETE FROM aggregation_jobs WHERE trigger = 'collection'"))
            await conn.commit()
    finally:
        await engine.dispose()
    assert outcome is not None
    ingest, collect = sum(timings.ingest), sum(timings.collect)
    return {
        "status": outcome.status.value,
        "wall_s": wall,
        "samples": samples,
        "ingest_share": ingest / (ingest + collect),
        "ingest_s": ingest,
        "collect_s": collect,
        "collect_ms_median": statistics.median(timings.collect) * 1000,
        "ingest_ms_median": statistics.median(timings.ingest) * 1000,
    }


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().strip()


async def main(database_url: str, instances: int, runs: int, levels: list[int]) -> None:
    base = Settings(
        database_url=database_url,
        secret_key=Fernet.generate_key().decode(),
        cron_enabled=False,
        log_level="WARNING",
    )
    timings = Timings()
    timings.install()
    print(f"load average at start: {loadavg()}")
    try:
        await register(base, instances)
        await one_run(base.model_copy(update={"collect_concurrency": 8}), timings)  # warm-up
        for level in levels:
            settings = base.model_copy(update={"collect_concurrency": level})
            results = [await one_run(settings, timings) for _ in range(runs)]
            walls = sorted(r["wall_s"] for r in results)
            shares = [r["ingest_share"] for r in results]
            print(
                f"concurrency {level:>2}: wall {' / '.join(f'{w:.2f}' for w in walls)} s "
                f"(median {statistics.median(walls):.2f} s); ingestion share "
                f"{statistics.median(shares) * 100:.1f}% (median; runs "
                f"{', '.join(f'{s * 100:.1f}%' for s in shares)}); per instance: read "
                f"{statistics.median(r['collect_ms_median'] for r in results):.1f} ms, ingest "
                f"{statistics.median(r['ingest_ms_median'] for r in results):.1f} ms (medians); "
                f"{results[0]['samples']} samples; status {results[0]['status']}"
            )
    finally:
        print(f"load average at end: {loadavg()}")
        await drop_database(database_url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    url = make_url(SERVER).set(database=f"dbsize_bench_collect_{uuid.uuid4().hex[:8]}")
    database_url = url.render_as_string(hide_password=False)
    create_and_upgrade(database_url)  # synchronous: runs its own event loop
    asyncio.run(main(database_url, args.instances, args.runs, args.levels))
