"""Ingestion benchmark: 1,000,000 samples over real HTTP in 50,000-row requests.

    .venv/bin/python bench/ingest.py            # what docs/benchmarks/ingestion.md reports

Creates a throw-away database (``dbsize_bench_<random>`` on DBSIZE_BENCH_SERVER, default the local
PostgreSQL), runs ``dbsize serve`` on a free loopback port in a subprocess, registers 1,000
instances, then times four phases of ``--samples`` rows each (1,000 instances x 10 databases x
100 days by default):

1. ``json insert``    new samples as JSON
2. ``json repost``    the same bodies again (every row unchanged, nothing rewritten)
3. ``json update``    the same keys with new sizes (every row updated)
4. ``csv insert``     the 100 days before, as text/csv

``--without-fk-and-date-index`` is an experiment, not the shipped schema: it drops the foreign key
of ``size_samples`` and its ``collected_date`` index in the throw-away database before the run, to
measure what those two cost on the hot path.

Request bodies are encoded before the clock starts: the numbers are the service's, not the
client's JSON encoder's. The database and the server are removed at the end (``--keep`` keeps
the database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from dbsize.keys.bootstrap import create_key
from dbsize.keys.tokens import Scope
from dbsize.migrate import create_and_upgrade, drop_database

SERVER_URL = os.environ.get(
    "DBSIZE_BENCH_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
INSTANCES = 1000
DATABASES = 10


@dataclass(frozen=True)
class Phase:
    name: str
    rows: int
    seconds: float
    latencies: Sequence[float]
    counts: dict[str, int]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "DBSIZE_DATABASE_URL": database_url,
        "DBSIZE_TIMEZONE": "UTC",
        "DBSIZE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "dbsize", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env)


async def _wait_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("the server did not start within 10 s")


async def _register(client: httpx.AsyncClient) -> list[int]:
    types = ("postgresql", "mysql", "sqlserver", "oracle")
    semaphore = asyncio.Semaphore(16)

    async def create(i: int) -> int:
        async with semaphore:
            body = {"name": f"bench-{i:04d}", "db_type": types[i % len(types)]}
            response = await client.post("/v1/instances", json=body)
            response.raise_for_status()
            instance_id: int = response.json()["id"]
            return instance_id

    return list(await asyncio.gather(*(create(i) for i in range(INSTANCES))))


def _rows(ids: Sequence[int], days: Sequence[date], bump: float) -> list[tuple[Any, ...]]:
    """(instance_id, database_name, day, size_mb): instance-major, like a collector backfill."""
    return [
        (
            instance_id,
            f"db_{d:02d}",
            day,
            round(1000 + instance_id * 7.5 + d * 3 + n * 0.25 + bump, 3),
        )
        for instance_id in ids
        for d in range(DATABASES)
        for n, day in enumerate(days)
    ]


def _json_bodies(rows: list[tuple[Any, ...]], batch: int) -> list[bytes]:
    return [
        json.dumps(
            {
                "samples": [
                    {
                        "instance_id": i,
                        "database_name": db,
                        "collected_date": day.isoformat(),
                        "size_mb": size,
                    }
                    for i, db, day, size in rows[start : start + batch]
                ]
            },
            separators=(",", ":"),
        ).encode()
        for start in range(0, len(rows), batch)
    ]


def _csv_bodies(rows: list[tuple[Any, ...]], batch: int) -> list[bytes]:
    header = "instance_id,database_name,collected_date,size_mb\n"
    return [
        (
            header
            + "".join(
                f"{i},{db},{day.isoformat()},{size}\n"
                for i, db, day, size in rows[start : start + batch]
            )
        ).encode()
        for start in range(0, len(rows), batch)
    ]


async def _post_all(
    client: httpx.AsyncClient,
    name: str,
    bodies: list[bytes],
    rows: int,
    content_type: str,
    concurrency: int,
) -> Phase:
    queue = list(reversed(bodies))
    latencies: list[float] = []
    counts = {"received": 0, "inserted": 0, "updated": 0, "unchanged": 0}

    async def worker() -> None:
        while queue:
            body = queue.pop()
            started = time.perf_counter()
            response = await client.post(
                "/v1/size-samples", content=body, headers={"content-type": content_type}
            )
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{name}: HTTP {response.status_code}: {response.text[:500]}")
            for key, value in response.json().items():
                counts[key] += value

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Phase(name, rows, time.perf_counter() - started, latencies, counts)


def _report(phases: Sequence[Phase], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"batch {args.batch}, concurrency {args.concurrency}, "
        f"{'WITHOUT fk/date index, ' if args.without_fk_and_date_index else ''}"
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'phase':<13} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'p50 req':>8} {'max req':>8}")
    for p in phases:
        print(
            f"{p.name:<13} {p.rows:>9,} {p.seconds:>8.2f} {p.rate:>9,.0f} "
            f"{statistics.median(p.latencies):>7.2f}s {max(p.latencies):>7.2f}s  {p.counts}"
        )


async def _run(
    base_url: str, server: subprocess.Popen[bytes], args: argparse.Namespace, key: str
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=300, headers=headers) as client:
        await _wait_ready(client, server)
        ids = await _register(client)
        days_per_db = args.samples // (INSTANCES * DATABASES)
        today = datetime.now(UTC).date()
        recent = [today - timedelta(days=n) for n in reversed(range(days_per_db))]
        older = [day - timedelta(days=days_per_db) for day in recent]
        rows = _rows(ids, recent, 0.0)
        json_bodies = _json_bodies(rows, args.batch)
        bumped = _json_bodies(_rows(ids, recent, 0.5), args.batch)
        csv_bodies = _csv_bodies(_rows(ids, older, 0.0), args.batch)
        mb = sum(map(len, json_bodies)) / 2**20
        print(
            f"{len(rows):,} rows per phase; JSON bodies {mb:.0f} MB in {len(json_bodies)} requests"
        )

        phases = [
            await _post_all(
                client, "json insert", json_bodies, len(rows), "application/json", args.concurrency
            ),
            await _post_all(
                client, "json repost", json_bodies, len(rows), "application/json", args.concurrency
            ),
            await _post_all(
                client, "json update", bumped, len(rows), "application/json", args.concurrency
            ),
        ]
        if not args.no_csv:
            phases.append(
                await _post_all(
                    client, "csv insert", csv_bodies, len(rows), "text/csv", args.concurrency
                )
            )
        _report(phases, args)


async def _drop_fk_and_date_index(database_url: str) -> None:
    connection = await asyncpg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        await connection.execute(
            "ALTER TABLE size_samples DROP CONSTRAINT fk_size_samples_instance_id_instances;"
            "DROP INDEX ix_size_samples_collected_date;"
        )
    finally:
        await connection.close()
    print("EXPERIMENT: size_samples has no foreign key and no collected_date index in this run")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight")
    parser.add_argument("--no-csv", action="store_true")
    parser.add_argument(
        "--without-fk-and-date-index",
        action="store_true",
        help="experiment: drop size_samples' foreign key and collected_date index first",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    database_url = (
        make_url(SERVER_URL)
        .set(database=f"dbsize_bench_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )
    create_and_upgrade(database_url)
    if args.without_fk_and_date_index:
        asyncio.run(_drop_fk_and_date_index(database_url))
    port = _free_port()
    server = _start_server(database_url, port)
    try:
        key = asyncio.run(create_key(database_url, name="bench-ingest", scope=Scope.write))
        asyncio.run(_run(f"http://127.0.0.1:{port}", server, args, key))
    finally:
        server.terminate()
        server.wait(timeout=30)
        if args.keep:
            print(f"kept {database_url}")
        else:
            asyncio.run(drop_database(database_url))


if __name__ == "__main__":
    main()
