"""Dashboard benchmark: each page's server time on the 1,000 x 20 x 365 fleet, one command.

    flock /tmp/dbsize-bench.lock .venv/bin/python bench/dashboard.py

A page is a shell (``/ui/...``) plus the API requests its script makes: requests the script
awaits together run concurrently, requests it awaits one after the other run in sequence, as in
the browser. The page's server time is the shell's time plus the time until its last API answer.

1. Creates a throw-away database (``dbsize_bench_ui_<random>``), builds the fleet with the
   aggregation benchmark's generator (``INSERT … SELECT``, 1,000 instances x 20 databases x 365
   days ending yesterday, so the forecast sees live keys), aggregates it with the job's own
   ``aggregate_periods`` (range scope over the whole history), gives every instance and every
   fifth database a capacity (spread so the forecast statuses mix), ``VACUUM ANALYZE``.
2. Starts ``dbsize serve`` and ``dbsize worker`` (one process each), submits an as-of job for
   today through the API (the job page's job: 1,000 records) and waits for it.
3. Per page: ``--warmup`` loads, then ``--loads`` timed loads by one client with a ``read`` key
   (every API request authenticates it, as the page's do); p50/p95/p99 of the page and of each
   request. Twice: first loads (no cache), then revalidating loads (the browser's HTTP cache
   sends If-None-Match; the read API answers 304 from its ETag without building the body).
``--keep`` keeps the database (and ``--database NAME`` reuses one kept earlier, skipping 1).
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

import aggregation as agg
from dbsize.aggregation.schemas import AggregationScope, ScopeKind
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.keys.service import KeyService
from dbsize.keys.tokens import Scope
from dbsize.migrate import create_and_upgrade, drop_database
from ingest import _free_port

TODAY = datetime.now(UTC).date()
TARGET_MS = 100.0

# One page load: chains run concurrently; the requests of a chain run one after the other.
Chain = Sequence[str]


@dataclass
class Page:
    name: str
    shell: str
    chains: list[list[str]]
    times: list[float] = field(default_factory=list)
    requests: dict[str, list[float]] = field(default_factory=dict)


def pages(instance_id: int, job_id: str) -> list[Page]:
    """What each page's script requests (ui/static/jobs.js, ui/static/capacity.js)."""
    stats = "/v1/statistics"
    jobs = "/v1/aggregation-jobs"
    week_ago = TODAY - timedelta(days=7)
    return [
        Page(
            "overview",
            "/ui",
            [
                [f"{stats}/instances/totals?period_type=daily&latest=true&start={week_ago}"],
                [f"{stats}/instances/totals?period_type=monthly&latest=true"],
                ["/v1/freshness"],
                [
                    f"{stats}/top?period_type=monthly&level=database&by=growth_mb_per_day"
                    "&n=5&complete=false"
                ],
                ["/v1/forecast?level=database&status=ok&limit=5"],
                [f"{jobs}?latest_per_trigger=true&limit=10"],
            ],
        ),
        Page("jobs", "/ui/jobs", [[f"{jobs}?limit=50"], [f"{jobs}/status-counts"]]),
        Page(
            "job",
            f"/ui/jobs/{job_id}",
            [[f"{jobs}/{job_id}", f"{jobs}/{job_id}/instances?limit=100"]],
        ),
        Page("fleet", "/ui/fleet", [["/v1/forecast?level=database&limit=200"]]),
        Page(
            "fleet by growth",
            "/ui/fleet?rank=growth",
            [
                [
                    f"{stats}/top?period_type=monthly&level=database&by=growth_mb_per_day"
                    "&n=200&complete=false"
                ]
            ],
        ),
        Page(
            "instance",
            f"/ui/instances/{instance_id}",
            [
                [f"/v1/instances/{instance_id}"],
                [f"/v1/forecast?level=instance&instance_id={instance_id}&limit=1"],
                # loaded once both answered: the daily series with every database's.
                [
                    "AFTER",
                    f"/v1/instances/{instance_id}/statistics?period_type=daily"
                    "&include=database_sizes",
                ],
            ],
        ),
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Browser:
    """What the page's requests go through: one HTTP client and, with ``revalidate``, the
    browser's HTTP cache (a GET with a stored ETag is sent with If-None-Match, and a 304 is
    answered from the stored body), as a reload or a second visit does."""

    def __init__(self, client: httpx.AsyncClient, *, revalidate: bool) -> None:
        self.client = client
        self.revalidate = revalidate
        self.cache: dict[str, tuple[str, Any]] = {}

    async def get(self, url: str, into: dict[str, list[float]]) -> Any:
        headers = {}
        if self.revalidate and url in self.cache:
            headers["If-None-Match"] = self.cache[url][0]
        began = time.perf_counter()
        response = await self.client.get(url, headers=headers)
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code not in (200, 304):
            raise SystemExit(f"{url}: HTTP {response.status_code} {response.text[:300]}")
        into.setdefault(url.split("&cursor=")[0], []).append(elapsed)
        if response.status_code == 304:
            return self.cache[url][1]
        body = response.json() if url.startswith("/v1") else {}
        if "etag" in response.headers:
            self.cache[url] = (response.headers["etag"], body)
        return body


async def run_chain(browser: Browser, chain: list[str], page: Page, gate: asyncio.Event) -> None:
    body: Any = {}
    for url in chain:
        if url == "AFTER":
            await gate.wait()
            continue
        if url == "NEXT":
            if not body.get("next_cursor"):
                continue
            url = f"{chain[0]}&cursor={body['next_cursor']}"
        body = await browser.get(url, page.requests)


async def load(browser: Browser, page: Page) -> float:
    began = time.perf_counter()
    await browser.get(page.shell, page.requests)
    gate = asyncio.Event()
    plain = [c for c in page.chains if c[0] != "AFTER"]
    after = [c for c in page.chains if c[0] == "AFTER"]

    async def first_wave() -> None:
        await asyncio.gather(*(run_chain(browser, c, page, gate) for c in plain))
        gate.set()

    await asyncio.gather(first_wave(), *(run_chain(browser, c, page, gate) for c in after))
    return (time.perf_counter() - began) * 1000


async def build(rendered: str, instances: int, databases: int, days: int) -> None:
    agg.LAST_DAY = TODAY - timedelta(days=1)
    agg.NEW_DAY = TODAY
    conn = await asyncpg.connect(agg._dsn(rendered))
    engine = create_engine(rendered, pool_size=4)
    try:
        seconds = await agg.build_fleet(conn, instances, databases, days)
        print(f"fleet built in {seconds:.1f} s", flush=True)
        first = agg.LAST_DAY - timedelta(days=days - 1)
        run = await agg.run_periods(
            create_sessionmaker(engine),
            "full recompute",
            AggregationScope(kind=ScopeKind.range, start=first, end=agg.LAST_DAY),
            list(range(1, instances + 1)),
            TODAY,
        )
        print(f"aggregated in {run.seconds:.1f} s", flush=True)
        # Capacities 1.05x to 4x the latest size: some keys exceeded, some within the horizon,
        # some beyond it; every fifth database has its own.
        await conn.execute(
            "UPDATE instances i SET capacity_mb = s.size * (0.9 + (i.id % 31) / 10.0) FROM ("
            " SELECT instance_id, sum(size_mb) AS size FROM size_samples"
            " WHERE collected_date = $1 GROUP BY instance_id) s WHERE s.instance_id = i.id",
            agg.LAST_DAY,
        )
        await conn.execute(
            "INSERT INTO database_capacities (instance_id, database_name, capacity_mb) "
            "SELECT instance_id, database_name, size_mb * (1.0 + (instance_id % 7) / 5.0) "
            "FROM size_samples WHERE collected_date = $1 "
            "AND (instance_id + length(database_name)) % 5 = 0",
            agg.LAST_DAY,
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
        await engine.dispose()


async def read_key(rendered: str, scope: Scope) -> str:
    engine = create_engine(rendered, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            created = await KeyService(session).create(
                name=f"bench-{uuid.uuid4().hex[:6]}", scope=scope
            )
        return created.key
    finally:
        await engine.dispose()


def start(
    command: str, env: dict[str, str], port: int | None = None, workers: int = 1
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "dbsize", command]
    if port is not None:
        args += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{what} did not happen within {seconds:.0f} s")


async def measure(rendered: str, loads: int, warmup: int, workers: int) -> None:
    port = _free_port()
    env = os.environ | {
        "DBSIZE_DATABASE_URL": rendered,
        "DBSIZE_REDIS_URL": os.environ.get("DBSIZE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
        "DBSIZE_QUEUE_NAME": f"dbsize-bench-ui-{uuid.uuid4().hex[:6]}",
        "DBSIZE_CRON_ENABLED": "false",
        "DBSIZE_LOG_LEVEL": "WARNING",
        "DBSIZE_SECRET_KEY": os.environ.get("DBSIZE_SECRET_KEY", "")
        or "YmVuY2gtb25seS1rZXktMzItYnl0ZXMtbG9uZyEhISE=",
    }
    server = start("serve", env, port, workers)
    print(f"dbsize serve --workers {workers}", flush=True)
    worker = start("worker", env)
    writer = await read_key(rendered, Scope.write)
    reader = await read_key(rendered, Scope.read)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as probe:
            await until(lambda: _ok(probe.get("/healthz")), 20, "the server start")
            job = (
                await probe.post(
                    "/v1/aggregation-jobs",
                    json={"as_of": (TODAY - timedelta(days=1)).isoformat()},
                    headers={"Authorization": f"Bearer {writer}"},
                )
            ).json()
            job_id = job["id"]
            done = (
                await probe.get(
                    f"/v1/aggregation-jobs/{job_id}?wait=30",
                    headers={"Authorization": f"Bearer {writer}"},
                )
            ).json()
            print(f"job {job_id}: {done['status']}, {done['total_instances']} records", flush=True)
        headers = {"Authorization": f"Bearer {reader}"}
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
            for revalidate in (False, True):
                print(
                    "\n== revalidating loads (the browser's cache: If-None-Match, 304)"
                    if revalidate
                    else "\n== first loads (no cache)",
                    flush=True,
                )
                browser = Browser(client, revalidate=revalidate)
                for page in pages(instance_id=7, job_id=job_id):
                    for _ in range(warmup):
                        await load(browser, page)
                    page.requests.clear()
                    page.times = [await load(browser, page) for _ in range(loads)]
                    report(page)
    finally:
        for process in (server, worker):
            process.terminate()
            process.wait(10)


async def _ok(request: Awaitable[httpx.Response]) -> bool:
    return (await request).status_code == 200


def report(page: Page) -> None:
    t = page.times
    verdict = "under" if percentile(t, 95) < TARGET_MS else "OVER"
    p50, p95, p99 = statistics.median(t), percentile(t, 95), percentile(t, 99)
    print(
        f"\n{page.name:<16} page p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  p99 {p99:6.1f} ms"
        f"  ({verdict} {TARGET_MS:.0f} ms at p95)",
        flush=True,
    )
    for url, values in page.requests.items():
        print(
            f"    {statistics.median(values):6.1f} / {percentile(values, 95):6.1f} ms  "
            f"(p50 / p95, n={len(values)})  {url}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--databases", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--loads", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="API processes (dbsize serve)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--database", help="reuse a database kept by --keep (skips the build)")
    args = parser.parse_args()
    name = args.database or f"dbsize_bench_ui_{uuid.uuid4().hex[:8]}"
    url = make_url(agg.SERVER_URL).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    print(f"load average at start: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    if not args.database:
        create_and_upgrade(rendered)
    try:
        if not args.database:
            asyncio.run(build(rendered, args.instances, args.databases, args.days))
        asyncio.run(measure(rendered, args.loads, args.warmup, args.workers))
    finally:
        print(f"\nload average at end: {Path('/proc/loadavg').read_text().strip()}", flush=True)
        if args.keep or args.database:
            print(f"kept database {name}")
        else:
            asyncio.run(drop_database(rendered))


if __name__ == "__main__":
    main()
