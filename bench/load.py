"""Load benchmark: 50 pollers, 5 submitters and 2 ingesters for 60 s against one API process and
one worker process, over real HTTP.

    flock /tmp/dbsize-bench.lock .venv/bin/python bench/load.py   # docs/benchmarks/load.md

A throw-away database (``dbsize_bench_<random>`` on DBSIZE_BENCH_SERVER) and its own arq queue
(on DBSIZE_BENCH_REDIS_URL, default ``redis://127.0.0.1:6379/4``); ``dbsize serve`` and
``dbsize worker`` run as subprocesses. Seed: 20 instances x 5 databases x 90 days posted through
the API. Then, at once, for ``--seconds``:

- **pollers** (50): follow the newest job a submitter created, ``GET /v1/aggregation-jobs/{id}``
  with ``If-None-Match`` (304 while unchanged), honouring ``Retry-After``; every 5th poll is a
  long-poll (``?wait=5``) instead. Latency is reported for the plain polls (the long-polls wait
  on purpose) and the long-polls separately.
- **submitters** (5): ``POST /v1/aggregation-jobs`` (one instance's daily statistics over a
  7-day window, a new window each time), then a 1 s pause.
- **ingesters** (2): ``POST /v1/size-samples`` of 500 rows (upserts of recent days), 0.5 s pause.

An error is a transport error or a status outside 200/202/304. The API's and the worker's CPU
are read from /proc (psutil) around the measured window. The load average at start and end is
printed: other runs may share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
import psutil
from sqlalchemy.engine import make_url

from dbsize.keys.bootstrap import create_key
from dbsize.keys.tokens import Scope
from dbsize.migrate import create_and_upgrade, drop_database

SERVER_URL = os.environ.get(
    "DBSIZE_BENCH_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DBSIZE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
INSTANCES = 20
DATABASES = 5
DAYS = 90
TODAY = date.today()


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)

    def record(self, kind: str, started: float, response: httpx.Response, ok: set[int]) -> None:
        self.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        self.statuses[f"{kind} {response.status_code}"] += 1
        if response.status_code not in ok:
            self.errors.append(f"{kind}: {response.status_code} {response.text[:200]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(database_url: str, queue: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DBSIZE_")}
    return clean | {
        "DBSIZE_DATABASE_URL": database_url,
        "DBSIZE_REDIS_URL": REDIS_URL,
        "DBSIZE_QUEUE_NAME": queue,
        "DBSIZE_CRON_ENABLED": "false",
        "DBSIZE_LOG_LEVEL": "WARNING",
        "DBSIZE_LOG_FORMAT": "json",
    }


def _samples(instance: int, days: range, bump: float = 0.0) -> dict[str, object]:
    return {
        "samples": [
            {
                "instance_name": f"load-{instance:02d}",
                "database_name": f"db{d}",
                "collected_date": (TODAY - timedelta(days=day)).isoformat(),
                "size_mb": round(1000 + 10 * d + (DAYS - day) + bump, 3),
            }
            for d in range(DATABASES)
            for day in days
        ]
    }


async def _seed(client: httpx.AsyncClient) -> list[int]:
    ids = []
    for i in range(INSTANCES):
        response = await client.post(
            "/v1/instances", json={"name": f"load-{i:02d}", "db_type": "postgresql"}
        )
        response.raise_for_status()
        ids.append(response.json()["id"])
        (await client.post("/v1/size-samples", json=_samples(i, range(DAYS)))).raise_for_status()
    return ids


async def _poller(client: httpx.AsyncClient, stats: Stats, stop: float) -> None:
    etag: str | None = None
    job: str | None = None
    n = 0
    while time.perf_counter() < stop:
        if not stats.jobs:
            await asyncio.sleep(0.1)
            continue
        if job != stats.jobs[-1]:
            job, etag = stats.jobs[-1], None
        n += 1
        long_poll = n % 5 == 0
        headers = {"If-None-Match": etag} if etag else {}
        started = time.perf_counter()
        try:
            response = await client.get(
                f"/v1/aggregation-jobs/{job}",
                params={"wait": 5} if long_poll else {},
                headers=headers,
            )
        except httpx.HTTPError as exc:
            stats.errors.append(f"poll: {type(exc).__name__}: {exc}")
            continue
        stats.record("long-poll" if long_poll else "poll", started, response, {200, 304})
        etag = response.headers.get("etag", etag)
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))


async def _submitter(
    client: httpx.AsyncClient, stats: Stats, stop: float, ids: list[int], rng: random.Random
) -> None:
    while time.perf_counter() < stop:
        end = TODAY - timedelta(days=rng.randrange(1, DAYS - 8))
        body = {
            "periods": ["daily"],
            "instance_ids": [rng.choice(ids)],
            "start": (end - timedelta(days=6)).isoformat(),
            "end": end.isoformat(),
        }
        started = time.perf_counter()
        try:
            response = await client.post("/v1/aggregation-jobs", json=body)
        except httpx.HTTPError as exc:
            stats.errors.append(f"submit: {type(exc).__name__}: {exc}")
            continue
        stats.record("submit", started, response, {202})
        if response.status_code == 202:
            stats.jobs.append(response.json()["id"])
        await asyncio.sleep(1.0)


async def _ingester(
    client: httpx.AsyncClient, stats: Stats, stop: float, rng: random.Random
) -> None:
    while time.perf_counter() < stop:
        body = _samples(rng.randrange(INSTANCES), range(100), bump=rng.random())
        started = time.perf_counter()
        try:
            response = await client.post("/v1/size-samples", json=body)
        except httpx.HTTPError as exc:
            stats.errors.append(f"ingest: {type(exc).__name__}: {exc}")
            continue
        stats.record("ingest", started, response, {200})
        await asyncio.sleep(0.5)


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _run(args: argparse.Namespace, base: str, key: str, api: int, worker: int) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=30, limits=limits
    ) as client:
        for _ in range(300):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        ids = await _seed(client)
        rng = random.Random(16)
        stats = Stats()
        api_process, worker_process = psutil.Process(api), psutil.Process(worker)
        cpu_before = (_cpu(api_process), _cpu(worker_process))
        load_start = _loadavg()
        started = time.perf_counter()
        stop = started + args.seconds
        tasks = [
            *(_poller(client, stats, stop) for _ in range(args.pollers)),
            *(_submitter(client, stats, stop, ids, random.Random(rng.random())) for _ in range(5)),
            *(_ingester(client, stats, stop, random.Random(rng.random())) for _ in range(2)),
        ]
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        cpu_after = (_cpu(api_process), _cpu(worker_process))
        load_end = _loadavg()
    print(f"load average at start: {load_start}")
    print(f"load average at end:   {load_end}")
    print(f"window {elapsed:.1f} s; {args.pollers} pollers, 5 submitters, 2 ingesters")
    print(f"errors: {len(stats.errors)} {stats.errors[:5]}")
    print(f"statuses: {dict(sorted(stats.statuses.items()))}")
    print("| requests | count | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for kind in ("poll", "long-poll", "submit", "ingest"):
        values = stats.latencies.get(kind, [])
        if values:
            print(
                f"| {kind} | {len(values)} | {_pct(values, 0.5):.1f} | {_pct(values, 0.99):.1f} "
                f"| {max(values) * 1000:.1f} |"
            )
    api_cpu = cpu_after[0] - cpu_before[0]
    worker_cpu = cpu_after[1] - cpu_before[1]
    print(f"API CPU: {api_cpu:.1f} s in {elapsed:.1f} s = {api_cpu / elapsed:.2f} cores")
    print(f"worker CPU: {worker_cpu:.1f} s = {worker_cpu / elapsed:.2f} cores")
    print(f"jobs submitted: {len(stats.jobs)} (statuses at the end are the worker's backlog)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pollers", type=int, default=50)
    args = parser.parse_args()
    database_url = (
        make_url(SERVER_URL)
        .set(database=f"dbsize_bench_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )
    queue = f"dbsize-bench-{uuid.uuid4().hex[:8]}"
    create_and_upgrade(database_url)
    port = _free_port()
    env = _env(database_url, queue)
    api = subprocess.Popen([sys.executable, "-m", "dbsize", "serve", "--port", str(port)], env=env)
    worker = subprocess.Popen([sys.executable, "-m", "dbsize", "worker"], env=env)
    try:
        key = asyncio.run(create_key(database_url, name="bench-load", scope=Scope.write))
        asyncio.run(_run(args, f"http://127.0.0.1:{port}", key, api.pid, worker.pid))
    finally:
        for process in (api, worker):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(drop_database(database_url))


if __name__ == "__main__":
    main()
