"""Read-API benchmark: p50/p95/p99 over real HTTP of every read endpoint, on 1,000 instances x
20 databases x 365 days fully aggregated.

    flock /tmp/dbsize-bench.lock .venv/bin/python bench/read_api.py              # load + measure
    flock /tmp/dbsize-bench.lock .venv/bin/python bench/read_api.py --keep       # keep the DB
    flock /tmp/dbsize-bench.lock .venv/bin/python bench/read_api.py --reuse DB \\
        --path '/ui/jobs' --path '/v1/forecast?limit=500'                       # extra GET paths

The fleet is loaded with the aggregation benchmark's loader (``bench/aggregation.py``,
``INSERT ... SELECT generate_series``, the last day being today so the forecast's window has
data) and aggregated by one full recompute (range scope, as the backfill job runs it); it is
NOT posted through the ingestion API. Every database and instance gets a capacity (some
already exceeded). Then ``VACUUM ANALYZE``, a ``dbsize serve`` subprocess, a warm-up, and for
each endpoint ``--requests`` requests (default 200) spread over ``--clients`` concurrent
clients (default 8), each with a new instance id where the path has one.

:func:`time_paths` is the reusable part: give it a base URL, a key and GET paths (``{i}`` is
replaced by an instance id that changes per request) and it returns the latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import psutil
from sqlalchemy.engine import make_url

import aggregation as loader
from dbsize.aggregation.schemas import AggregationScope, ScopeKind
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.keys.service import KeyService
from dbsize.keys.tokens import Scope
from dbsize.migrate import create_and_upgrade, drop_database
from ingest import _free_port, _wait_ready

INSTANCES, DATABASES, DAYS = 1000, 20, 365

# (name, path): {i} is an instance id (1..1000, different per request).
ENDPOINTS: list[tuple[str, str]] = [
    (
        "databases: monthly latest, by change",
        "/v1/statistics/databases?period_type=monthly"
        "&latest=true&sort=size_change_mb&order=desc&limit=100",
    ),
    (
        "databases: daily of one instance",
        "/v1/statistics/databases?period_type=daily&instance_id={i}&limit=100",
    ),
    (
        "databases: name contains, monthly",
        "/v1/statistics/databases?period_type=monthly&database_name_contains=db_1&limit=100",
    ),
    (
        "databases: weekly, sqlserver, complete",
        "/v1/statistics/databases?period_type=weekly&db_type=sqlserver&complete=true&limit=100",
    ),
    (
        "instances: monthly latest, by percent",
        "/v1/statistics/instances?period_type=monthly"
        "&latest=true&sort=size_change_percent&limit=100",
    ),
    ("instances: daily, 500 rows", "/v1/statistics/instances?period_type=daily&limit=500"),
    ("series: instance daily", "/v1/instances/{i}/statistics?period_type=daily"),
    (
        "series: instance monthly + databases",
        "/v1/instances/{i}/statistics?period_type=monthly&include=databases",
    ),
    ("series: database daily", "/v1/instances/{i}/databases/db_7/statistics?period_type=daily"),
    ("top: databases monthly n=20", "/v1/statistics/top?period_type=monthly&n=20"),
    (
        "top: databases daily by growth",
        "/v1/statistics/top?period_type=daily&by=growth_mb_per_day&n=20",
    ),
    (
        "top: instances quarterly by %",
        "/v1/statistics/top?period_type=quarterly&level=instance&by=size_change_percent&n=20",
    ),
    ("forecast: 20,000 databases", "/v1/forecast?limit=100"),
    ("forecast: databases, name contains", "/v1/forecast?database_name_contains=db_1&limit=100"),
    ("forecast: 1,000 instances", "/v1/forecast?level=instance&limit=100"),
    (
        "top: databases monthly, name contains",
        "/v1/statistics/top?period_type=monthly&n=20&database_name_contains=db_7",
    ),
    ("forecast: one instance", "/v1/forecast?instance_id={i}"),
    ("freshness", "/v1/freshness"),
]


@dataclass(frozen=True)
class Timing:
    name: str
    path: str
    requests: int
    statuses: dict[int, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    bytes_per_response: int
    server_cpu_ms: float | None = None  # CPU time of the API processes per timed request
    client_cpu_ms: float | None = None  # CPU time of this (load-generating) process per request


def _percentile(sorted_ms: Sequence[float], fraction: float) -> float:
    index = min(len(sorted_ms) - 1, max(0, round(fraction * len(sorted_ms)) - 1))
    return sorted_ms[index]


class Http11Client:
    """The load generator's HTTP client: HTTP/1.1 keep-alive connections over asyncio streams,
    one per concurrent client, each response read in full (``Content-Length`` or chunked) and
    nothing else done with it (no header objects, no decoding). httpx took ~2 ms of CPU per
    request on this machine, on the two cores the API and PostgreSQL use too."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = url.host, url.port or 80
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(status, body) of ``GET path``."""
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.headers}{extra}\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        if "content-length" in fields:
            body = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            body = b"".join(parts)
        else:
            body = b""  # 304 and other bodiless answers
        if fields.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status, body

    async def aclose(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def _cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of ``pid`` and its children (``--workers N``), or of this
    process when ``pid`` is None."""
    if pid is None:
        return time.process_time()
    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


async def time_path(
    client: Http11Client,
    name: str,
    path: str,
    *,
    requests: int = 200,
    clients: int = 8,
    warmup: int = 20,
    instances: int = INSTANCES,
    headers: dict[str, str] | None = None,
    server_pid: int | None = None,
) -> Timing:
    """``requests`` GETs of ``path`` from ``clients`` concurrent tasks (after ``warmup``)."""
    counter = iter(range(10**9))

    def url() -> str:
        return path.replace("{i}", str(next(counter) * 37 % instances + 1))

    # Warm-up from as many concurrent clients as the timed run: the API's pool then holds as
    # many open connections, each with this path's statements prepared. A sequential warm-up
    # warmed one connection; the timed run's first requests on the others paid for a new
    # PostgreSQL backend (its catalog caches cold) and for preparing each statement, which
    # landed in the first endpoint's p95 and p99 (decision 0007, "sixth round").
    warming = iter(range(max(warmup, 3 * clients)))

    async def warm_client() -> None:
        for _ in warming:
            await client.get(url(), headers=headers)

    await asyncio.gather(*(warm_client() for _ in range(clients)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sizes: list[int] = []
    remaining = iter(range(requests))

    async def one_client() -> None:
        for _ in remaining:
            began = time.perf_counter()
            status, body = await client.get(url(), headers=headers)
            latencies.append((time.perf_counter() - began) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            sizes.append(len(body))

    server_cpu, client_cpu = _cpu_seconds(server_pid), _cpu_seconds(None)
    await asyncio.gather(*(one_client() for _ in range(clients)))
    server_cpu, client_cpu = _cpu_seconds(server_pid) - server_cpu, _cpu_seconds(None) - client_cpu
    ordered = sorted(latencies)
    return Timing(
        name=name,
        path=path,
        requests=len(ordered),
        statuses=statuses,
        p50_ms=_percentile(ordered, 0.50),
        p95_ms=_percentile(ordered, 0.95),
        p99_ms=_percentile(ordered, 0.99),
        max_ms=ordered[-1],
        bytes_per_response=int(statistics.mean(sizes)),
        server_cpu_ms=server_cpu * 1000 / requests if server_pid is not None else None,
        client_cpu_ms=client_cpu * 1000 / requests,
    )


async def time_paths(
    base_url: str,
    api_key: str,
    paths: Sequence[tuple[str, str]],
    *,
    requests: int = 200,
    clients: int = 8,
    server_pid: int | None = None,
) -> list[Timing]:
    """Time each (name, path) in turn over real HTTP; the reusable entry point."""
    client = Http11Client(base_url, {"Authorization": f"Bearer {api_key}"})
    try:
        return [
            await time_path(
                client, name, path, requests=requests, clients=clients, server_pid=server_pid
            )
            for name, path in paths
        ]
    finally:
        await client.aclose()


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def report(timings: Sequence[Timing]) -> None:
    """Latency percentiles, and CPU per request: ``srv cpu`` of the API processes, ``cli cpu``
    of the load generator (both ms per timed request, measured over the timed requests)."""
    print(f"{'endpoint':42} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'srv cpu':>8} {'cli cpu':>8} {'bytes':>8}  statuses")  # fmt: skip
    for t in timings:
        server = f"{t.server_cpu_ms:8.2f}" if t.server_cpu_ms is not None else f"{'-':>8}"
        client = f"{t.client_cpu_ms:8.2f}" if t.client_cpu_ms is not None else f"{'-':>8}"
        latency = f"{t.p50_ms:8.1f} {t.p95_ms:8.1f} {t.p99_ms:8.1f} {t.max_ms:8.1f}"
        print(f"{t.name:42} {t.requests:4} {latency} {server} {client}"
              f" {t.bytes_per_response:8}  {t.statuses}")  # fmt: skip


def report_rounds(rounds: Sequence[Sequence[Timing]]) -> None:
    """Each endpoint over the rounds (``--rounds N``): the median p95 and its range, the median
    CPU per request. The VM's speed drifts from one run to the next (the same code's CPU per
    request moved by 40 % between two runs, docs/benchmarks/read-api.md, "Eighth round"):
    one run's p95 is one sample of that drift, the median over rounds spaced minutes apart is
    the number to compare with a target."""
    print(f"\nover {len(rounds)} rounds")
    print(f"{'endpoint':42} {'p95 ms median':>14} {'p95 min-max':>14} {'srv cpu median':>15}")
    for index, first in enumerate(rounds[0]):
        p95 = sorted(r[index].p95_ms for r in rounds)
        cpu = [r[index].server_cpu_ms for r in rounds]
        server = (
            f"{statistics.median(c for c in cpu if c is not None):15.2f}"
            if None not in cpu
            else f"{'-':>15}"
        )
        spread = f"{p95[0]:.1f}-{p95[-1]:.1f}"
        print(f"{first.name:42} {statistics.median(p95):14.1f} {spread:>14} {server}")


async def load(rendered: str) -> None:
    today = datetime.now(UTC).date()
    loader.LAST_DAY = today
    loader.NEW_DAY = today + timedelta(days=1)
    conn = await asyncpg.connect(loader._dsn(rendered))
    try:
        seconds = await loader.build_fleet(conn, INSTANCES, DATABASES, DAYS)
        print(f"loaded {INSTANCES * DATABASES * DAYS:,} samples in {seconds:.0f} s", flush=True)
    finally:
        await conn.close()
    engine = create_engine(rendered, pool_size=4)
    try:
        scope = AggregationScope(
            kind=ScopeKind.range, start=today - timedelta(days=DAYS - 1), end=today
        )
        run = await loader.run_periods(
            create_sessionmaker(engine), "full recompute", scope, list(range(1, INSTANCES + 1)),
            today,
        )  # fmt: skip
        print(f"full recompute {run.rows} rows in {run.seconds:.0f} s", flush=True)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(loader._dsn(rendered))
    try:
        await set_capacities(conn)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def set_capacities(conn: asyncpg.Connection) -> None:
    """Every database and instance a capacity (databases between 0.95x and 2.9x of their last
    size: some exceeded, most within years), from the newest quarter's rows."""
    await conn.execute(
        """
        INSERT INTO database_capacities (instance_id, database_name, capacity_mb)
        SELECT instance_id, database_name,
               round(last_size_mb * (0.95 + (instance_id * 7 + length(database_name)) % 20
                                      / 10.0), 3)
        FROM database_size_aggregations
        WHERE period_type = 'quarterly'
          AND period_start = (SELECT max(period_start) FROM instance_size_aggregations
                              WHERE period_type = 'quarterly')
        ON CONFLICT DO NOTHING
        """
    )
    await conn.execute(
        """
        UPDATE instances i SET capacity_mb = round(a.last_size_mb_sum * 1.5, 3)
        FROM (SELECT instance_id, max(max_size_mb) AS last_size_mb_sum
              FROM instance_size_aggregations WHERE period_type = 'quarterly'
              GROUP BY instance_id) a
        WHERE a.instance_id = i.id AND i.capacity_mb IS NULL
        """
    )


async def ensure_capacities(rendered: str) -> None:
    """A reused database made by another benchmark may have no capacities: give it some."""
    conn = await asyncpg.connect(loader._dsn(rendered))
    try:
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM database_capacities)"):
            await set_capacities(conn)
            await conn.execute("ANALYZE database_capacities")
            await conn.execute("ANALYZE instances")
            print("gave the reused database capacities", flush=True)
    finally:
        await conn.close()


async def admin_key(rendered: str) -> str:
    engine = create_engine(rendered, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            created = await KeyService(session).create(name="bench-read", scope=Scope.admin)
        return created.key
    finally:
        await engine.dispose()


def start_server(
    database_url: str, port: int, workers: int, *, pythonpath: str | None = None
) -> subprocess.Popen[bytes]:
    """``dbsize serve --workers N`` on ``port``, logging warnings only; with ``pythonpath``,
    the code of that ``src`` (another checkout's) instead of this one's."""
    env = os.environ | {
        "DBSIZE_DATABASE_URL": database_url,
        "DBSIZE_TIMEZONE": "UTC",
        "DBSIZE_LOG_LEVEL": "WARNING",
    }
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "dbsize", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen([*command, "--workers", str(workers)], env=env)


async def measure(rendered: str, args: argparse.Namespace) -> None:
    key = await admin_key(rendered)
    port = _free_port()
    server = start_server(rendered, port, args.workers)
    print(f"dbsize serve --workers {args.workers}", flush=True)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as probe:
            await _wait_ready(probe, server)
        paths = [(p, p) for p in args.path] if args.path else ENDPOINTS
        rounds: list[list[Timing]] = []
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {number} of {args.rounds}", flush=True)
            print(f"load average at start: {_loadavg()}", flush=True)
            timings = await time_paths(
                base, key, paths, requests=args.requests, clients=args.clients,
                server_pid=server.pid,
            )  # fmt: skip
            print(f"load average at end: {_loadavg()}")
            report(timings)
            rounds.append(timings)
        if args.rounds > 1:
            report_rounds(rounds)
        if args.cold:
            await cold_forecast(rendered, base, key, args.cold)
    finally:
        server.terminate()
        server.wait(10)


async def cold_forecast(rendered: str, base: str, key: str, times: int) -> None:
    """The fleet forecast's first request after the data changed (its kept fits and ranking are
    of another version: emptied here, which costs the request the same), one request at a
    time, each followed by a warm one."""
    conn = await asyncpg.connect(loader._dsn(rendered))
    cold: list[float] = []
    warm: list[float] = []
    print(f"load average at start (cold): {_loadavg()}", flush=True)
    try:
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as client:
            for _ in range(times):
                await conn.execute(
                    "DELETE FROM forecast_fit_versions; DELETE FROM forecast_fits; "
                    "DELETE FROM forecast_rank_versions; DELETE FROM forecast_ranks"
                )
                for into in (cold, warm):
                    began = time.perf_counter()
                    response = await client.get("/v1/forecast?limit=100")
                    into.append((time.perf_counter() - began) * 1000)
                    assert response.status_code == 200, response.text
    finally:
        await conn.close()
    print(f"load average at end (cold): {_loadavg()}")
    for name, values in (("cold (fits computed)", cold), ("warm right after", warm)):
        ordered = sorted(values)
        print(
            f"forecast 20,000 databases, {name}: n={len(ordered)} p50"
            f" {_percentile(ordered, 0.5):.1f} p95 {_percentile(ordered, 0.95):.1f}"
            f" max {ordered[-1]:.1f} ms"
        )


async def explain(rendered: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the main statements of each kind of read, captured from the
    service itself (every long read statement of each call, with its parameters), and of the
    fleet forecast's fits (the part a cold request adds)."""
    from sqlalchemy import event, text

    from dbsize.aggregation.schemas import PeriodType
    from dbsize.statistics.filters import StatisticsFilter
    from dbsize.statistics.forecast_page import ForecastQuery
    from dbsize.statistics.forecast_sql import fits_sql
    from dbsize.statistics.schemas import (
        GrowthMeasure,
        SeriesInclude,
        SortField,
        SortOrder,
        StatisticsLevel,
    )
    from dbsize.statistics.service import StatisticsService

    engine = create_engine(rendered, pool_size=1)
    captured: list[tuple[str, object]] = []

    def capture(*args: object) -> None:
        captured.append((str(args[2]), args[3]))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    sessionmaker = create_sessionmaker(engine)
    today = datetime.now(UTC).date()
    db, inst = StatisticsLevel.database, StatisticsLevel.instance
    desc = SortOrder.desc
    forecast = ForecastQuery(db, None, 365, 30, (), None, None, ())
    cases = {
        "databases: monthly latest, by change": lambda s: s.list_page(
            db, StatisticsFilter(PeriodType.monthly, latest=True),
            sort=SortField.size_change_mb, order=desc, cursor=None, limit=100),
        "databases: daily of one instance": lambda s: s.list_page(
            db, StatisticsFilter(PeriodType.daily, (17,)),
            sort=SortField.period_start, order=desc, cursor=None, limit=100),
        "databases: name contains, monthly": lambda s: s.list_page(
            db, StatisticsFilter(PeriodType.monthly, database_name_contains="db_1"),
            sort=SortField.period_start, order=desc, cursor=None, limit=100),
        "databases: weekly, sqlserver, complete": lambda s: s.list_page(
            db, StatisticsFilter(PeriodType.weekly, db_type="sqlserver", complete=True),
            sort=SortField.period_start, order=desc, cursor=None, limit=100),
        "instances: monthly latest, by percent": lambda s: s.list_page(
            inst, StatisticsFilter(PeriodType.monthly, latest=True),
            sort=SortField.size_change_percent, order=desc, cursor=None, limit=100),
        "instances: daily, 500 rows": lambda s: s.list_page(
            inst, StatisticsFilter(PeriodType.daily),
            sort=SortField.period_start, order=desc, cursor=None, limit=500),
        "series: instance monthly + databases": lambda s: s.instance_series(
            17, PeriodType.monthly, None, None, include=SeriesInclude.databases),
        "series: database daily": lambda s: s.database_series(
            17, "db_7", PeriodType.daily, None, None),
        "top: databases monthly n=20": lambda s: s.top(
            db, StatisticsFilter(PeriodType.monthly, complete=True),
            by=GrowthMeasure.size_change_mb, n=20),
        "top: databases daily by growth": lambda s: s.top(
            db, StatisticsFilter(PeriodType.daily, complete=True),
            by=GrowthMeasure.growth_mb_per_day, n=20),
        "forecast: 20,000 databases (ranking the kept fits)": lambda s: s.forecast(
            forecast, cursor=None, limit=100),
    }  # fmt: skip
    try:
        for name, call in cases.items():
            captured.clear()
            async with session_scope(sessionmaker) as session:
                await call(StatisticsService(session, today=today, stale_after_days=2))
            reads = [
                (statement, parameters)
                for statement, parameters in captured
                if len(statement) > 300
                and statement.lstrip().upper().startswith(("SELECT", "WITH"))
            ]
            for statement, parameters in reads:
                async with engine.connect() as conn:
                    result = await conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement,
                        parameters,  # type: ignore[arg-type]
                    )
                    plan = "\n".join(row[0] for row in result)
                print(f"--- {name}\n{plan}\n", flush=True)
        async with engine.connect() as conn:
            result = await conn.execute(
                text("EXPLAIN (ANALYZE, BUFFERS) " + fits_sql(db, filter_ids=False)),
                {"today": today, "window_days": 30},
            )
            plan = "\n".join(row[0] for row in result)
        print(f"--- forecast: the fleet's fits (a cold request)\n{plan}\n", flush=True)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", metavar="DB", help="measure an existing loaded database")
    parser.add_argument("--path", action="append", default=[], help="time these GET paths")
    parser.add_argument("--explain", action="store_true", help="print the main plans and stop")
    parser.add_argument("--workers", type=int, default=1, help="API processes (dbsize serve)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="time every endpoint this many times, in turn"
    )
    parser.add_argument(
        "--cold", type=int, default=0, metavar="N", help="also time N cold fleet forecasts"
    )
    args = parser.parse_args()
    name = args.reuse or f"dbsize_bench_read_{uuid.uuid4().hex[:8]}"
    rendered = make_url(loader.SERVER_URL).set(database=name).render_as_string(hide_password=False)
    if not args.reuse:
        create_and_upgrade(rendered)
        print(f"database {name}", flush=True)
    else:
        asyncio.run(ensure_capacities(rendered))
    try:
        if not args.reuse:
            asyncio.run(load(rendered))
        if args.explain:
            asyncio.run(explain(rendered))
        else:
            asyncio.run(measure(rendered, args))
    finally:
        if not (args.keep or args.reuse):
            asyncio.run(drop_database(rendered))


if __name__ == "__main__":
    main()
