"""Nightly-run spread: the same two nights on fresh copies of one recomputed fleet, one command.

    .venv/bin/python bench/nights.py                # what docs/benchmarks/aggregation.md reports
    .venv/bin/python bench/nights.py --copies 3     # fewer copies

Builds the fleet of ``bench/aggregation.py`` (1,000 instances x 20 databases x 365 days,
7.3M samples) in a throw-away database, recomputes it in full and ``VACUUM ANALYZE``s it. Then,
``--copies`` times, on a fresh copy of that database (``CREATE DATABASE … TEMPLATE``):

1. one new day for every database, 2026-06-30 (the last day of a month and of a quarter), a
   ``CHECKPOINT``, and the nightly incremental run the morning after, as the job runs it
   (``prepare_incremental``, ``aggregate_periods`` two period types at a time,
   ``commit_changes``);
2. on top of it, one more day, 2026-07-01 (the first of a month and a quarter: a new month's
   and quarter's rows), the same way.

With ``--template NAME`` no fleet is built: the copies are made of a kept one (for example the
real path's, ``bench/aggregation.py --instances 5000 --days 92 --nights 0 --keep``), and
``--nights N`` runs N nights from 2026-06-30 on each copy; ``--vacuum`` vacuums the job's
tables before each night, as autovacuum would in the day between two nights (it is off on
the benchmark machine's server, so without it every dead row of the backfill and of earlier
nights is still there). ``--upgrade`` migrates each copy to
the code's head first (a kept fleet of older code). Run it with ``PYTHONPATH`` pointing at
another checkout's ``src`` to time that code on the same copies.

With ``--same-day`` each night runs on the day its samples are dated (a cron after a collector
that dates its samples the day it collects them): the first night leaves that day, month and
quarter open, and the second completes them beside its new day's, month's and quarter's rows.

For each night it prints the wall-clock time, the machine's busy CPU-seconds over it (both
cores, from ``/proc/stat``), the benchmark process's own CPU-seconds, and each period type's
time; then the spread of each night over the copies. A single night is one sample of a VM
whose speed drifts: this is the number to compare code with, not one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

import asyncpg
from sqlalchemy.engine import make_url

from aggregation import (
    LAST_DAY,
    NEW_DAY,
    SERVER_URL,
    _dsn,
    add_new_day,
    build_fleet,
    run_incremental,
    run_periods,
)
from dbsize.aggregation.schemas import AggregationScope, ScopeKind
from dbsize.db import create_engine, create_sessionmaker
from dbsize.migrate import create_and_upgrade, drop_database

NIGHTS = (NEW_DAY, NEW_DAY + timedelta(days=1))


def machine_busy_seconds() -> float:
    """CPU-seconds all cores spent on anything but idle and I/O wait since boot."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / 100


async def backend_ticks(conn: asyncpg.Connection) -> dict[int, int]:
    """CPU clock ticks (user + system) of each other server backend of this database."""
    pids = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    ticks = {}
    for (pid,) in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # not on this machine, or gone
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Night:
    day: date
    seconds: float
    busy: float
    own: float
    periods: dict[str, float] = field(default_factory=dict)
    backends: float = 0.0
    """CPU-seconds of the job's server backends (this machine's /proc): the night's own work,
    less sensitive to other load than its wall clock."""


async def build_template(url: str, instances: int, databases: int, days: int) -> None:
    engine = create_engine(url, pool_size=4)
    conn = await asyncpg.connect(_dsn(url))
    try:
        seconds = await build_fleet(conn, instances, databases, days)
        first_day = LAST_DAY - timedelta(days=days - 1)
        full = await run_periods(
            create_sessionmaker(engine),
            "full recompute",
            AggregationScope(kind=ScopeKind.range, start=first_day, end=LAST_DAY),
            list(range(1, instances + 1)),
            NEW_DAY,
        )
        await conn.execute("VACUUM ANALYZE database_size_aggregations, instance_size_aggregations")
        print(
            f"fleet of {instances} x {databases} x {days} days built in {seconds:.1f} s, "
            f"recomputed in {full.seconds:.1f} s"
        )
    finally:
        await conn.close()
        await engine.dispose()


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


async def nights_on_copy(
    url: str,
    instances: int,
    *,
    same_day: bool,
    days: tuple[date, ...] = NIGHTS,
    vacuum: bool = False,
) -> list[Night]:
    engine = create_engine(url, pool_size=4)
    sessionmaker = create_sessionmaker(engine)
    conn = await asyncpg.connect(_dsn(url))
    ids = list(range(1, instances + 1))
    nights = []
    try:
        for day in days:
            if vacuum:  # what autovacuum (off on the benchmark's server) does in a day
                await conn.execute(
                    "VACUUM sample_changes, aggregation_refresh_state, aggregation_coverage, "
                    "database_size_aggregations, instance_size_aggregations"
                )
            await add_new_day(conn, day)
            await conn.execute("ANALYZE sample_changes")
            await conn.execute("CHECKPOINT")
            busy, own = machine_busy_seconds(), own_cpu_seconds()
            ticks = await backend_ticks(conn)
            today = day if same_day else day + timedelta(days=1)
            run = await run_incremental(sessionmaker, str(day), ids, today)
            after = await backend_ticks(conn)
            backends = sum(t - ticks.get(pid, 0) for pid, t in after.items())
            nights.append(
                Night(
                    day,
                    run.seconds,
                    machine_busy_seconds() - busy,
                    own_cpu_seconds() - own,
                    {r.period_type.value: r.duration_ms / 1000 for r in run.results},
                    backends / os.sysconf("SC_CLK_TCK"),
                )
            )
    finally:
        await conn.close()
        await engine.dispose()
    return nights


def report_night(copy: int, night: Night) -> None:
    periods = "  ".join(f"{name} {seconds:.2f}" for name, seconds in night.periods.items())
    print(
        f"copy {copy} {night.day}: {night.seconds:.2f} s  (machine busy {night.busy:.2f} "
        f"CPU-s, this process {night.own:.2f}, its backends {night.backends:.2f})  {periods}"
    )


def report_spread(all_nights: list[list[Night]]) -> None:
    for index, day in enumerate(night.day for night in all_nights[0]):
        times = sorted(nights[index].seconds for nights in all_nights)
        busy = statistics.median(nights[index].busy for nights in all_nights)
        backends = statistics.median(nights[index].backends for nights in all_nights)
        under = sum(t < 1 for t in times)
        print(
            f"{day}: median {statistics.median(times):.2f} s, min {times[0]:.2f}, "
            f"max {times[-1]:.2f}; under 1 s in {under} of {len(times)}; "
            f"median machine busy {busy:.2f} CPU-s, backends {backends:.2f} CPU-s"
        )


async def main_async(args: argparse.Namespace, template: str) -> None:
    if not args.template:
        await build_template(template, args.instances, args.databases, args.days)
    days = tuple(NEW_DAY + timedelta(days=n) for n in range(args.nights))
    import dbsize

    print(f"code: {dbsize.__file__}; load average {loadavg()}")
    server = await asyncpg.connect(_dsn(SERVER_URL))
    template_name = make_url(template).database
    all_nights = []
    try:
        for copy in range(1, args.copies + 1):
            name = f"{template_name}_copy"
            url = make_url(template).set(database=name).render_as_string(hide_password=False)
            began = time.perf_counter()
            await server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
            print(f"copy {copy} made in {time.perf_counter() - began:.1f} s")
            if args.log_statements:  # each statement's duration in the server's log
                await server.execute(f'ALTER DATABASE "{name}" SET log_min_duration_statement = 0')
            try:
                if args.upgrade:
                    await asyncio.to_thread(create_and_upgrade, url)
                nights = await nights_on_copy(
                    url, args.instances, same_day=args.same_day, days=days, vacuum=args.vacuum
                )
            finally:
                await drop_database(url)
            for night in nights:
                report_night(copy, night)
            all_nights.append(nights)
            print(f"load average {loadavg()}")
    finally:
        await server.close()
    print()
    report_spread(all_nights)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--copies", type=int, default=7)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--databases", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--same-day", action="store_true", help="run each night on its samples' own day"
    )
    parser.add_argument("--keep", action="store_true", help="keep the recomputed fleet")
    parser.add_argument("--template", help="copy this kept fleet instead of building one")
    parser.add_argument("--nights", type=int, default=len(NIGHTS), help="nights per copy")
    parser.add_argument("--upgrade", action="store_true", help="migrate each copy first")
    parser.add_argument(
        "--vacuum",
        action="store_true",
        help="VACUUM the job's tables before each night (autovacuum's day between nights)",
    )
    parser.add_argument(
        "--log-statements", action="store_true", help="log every statement's duration"
    )
    args = parser.parse_args()
    if args.template:
        template = make_url(SERVER_URL).set(database=args.template)
        asyncio.run(main_async(args, template.render_as_string(hide_password=False)))
        return
    name = f"dbsize_bench_nights_{uuid.uuid4().hex[:8]}"
    template = make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    create_and_upgrade(template)  # outside the event loop: Alembic runs its own
    try:
        asyncio.run(main_async(args, template))
    finally:
        if not args.keep:
            asyncio.run(drop_database(template))
        else:
            print(f"kept database {name}")


if __name__ == "__main__":
    main()
