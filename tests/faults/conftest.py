"""Fault-suite helpers: a PRIVATE redis-server on a free port (never the shared one), worker
processes started and killed for real, and snapshots of the statistics tables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from dbsize.keys.tokens import Scope
from dbsize.main import create_app
from tests.conftest import bearer, make_key

TERMINAL = {"succeeded", "partial", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A throw-away redis-server without persistence: a restart comes back EMPTY, as after a
    crash, so every queue entry made before the stop is gone."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for the fault suite"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@pytest.fixture(autouse=True)
async def _no_injected_faults(engine: AsyncEngine) -> AsyncIterator[None]:
    """The slow/failing triggers other suites inject must not leak into a fault test, nor
    ours out of it."""

    async def drop() -> None:
        async with engine.begin() as conn:
            for trigger in ("test_slow_period", "test_fail_period"):
                await conn.execute(
                    text(f"DROP TRIGGER IF EXISTS {trigger} ON database_size_aggregations")
                )

    await drop()
    yield
    await drop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DBSIZE_")}
    return env | {
        "DBSIZE_DATABASE_URL": settings.database_url,
        "DBSIZE_REDIS_URL": settings.redis_url,
        "DBSIZE_QUEUE_NAME": settings.queue_name,
        "DBSIZE_CRON_ENABLED": "false",
        "DBSIZE_LOG_FORMAT": "json",
        "DBSIZE_JOB_LEASE_SECONDS": str(settings.job_lease_seconds),
        "DBSIZE_JOB_HEARTBEAT_SECONDS": str(settings.job_heartbeat_seconds),
        "DBSIZE_JOB_MAX_ATTEMPTS": str(settings.job_max_attempts),
        "DBSIZE_WORKER_MAX_JOBS": str(settings.worker_max_jobs),
        **extra,
    }


class WorkerProcess:
    """``dbsize worker`` as a real process, its log appended to one file."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> int:
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dbsize", "worker"],
            env=worker_env(self.settings),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        if self._log_file is not None:
            self._log_file.close()

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


async def wait_heartbeat(engine: AsyncEngine, pid: int, timeout: float = 60) -> None:
    """Until the worker process ``pid`` has started (its first heartbeat row)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM worker_heartbeats WHERE pid = :pid"), {"pid": pid}
            )
        if found:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"worker {pid} did not heartbeat within {timeout} s")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An in-process API on ``settings`` with a write key."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client,
    ):
        client.headers.update(bearer(await make_key(app.state.sessionmaker, Scope.admin)))
        yield app, client


async def job_statuses(engine: AsyncEngine, ids: set[str]) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id::text, status FROM aggregation_jobs WHERE id::text = ANY(:ids)"),
            {"ids": sorted(ids)},
        )
        return {row[0]: row[1] for row in rows}


async def wait_all_terminal(engine: AsyncEngine, ids: set[str], timeout: float) -> dict[str, str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        statuses = await job_statuses(engine, ids)
        if len(statuses) == len(ids) and all(s in TERMINAL for s in statuses.values()):
            return statuses
        if asyncio.get_running_loop().time() > deadline:
            return statuses
        await asyncio.sleep(0.5)


STATISTICS_COLUMNS = "* EXCLUDE"  # placeholder, see snapshot_statistics


async def snapshot_statistics(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Both statistics tables, without the columns that name the run (computed_at, job_id)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in ("database_size_aggregations", "instance_size_aggregations"):
            columns = [
                c
                for c in (
                    await conn.execute(
                        text(
                            "SELECT column_name FROM information_schema.columns "
                            "WHERE table_name = :t ORDER BY ordinal_position"
                        ),
                        {"t": table},
                    )
                ).scalars()
                if c not in {"computed_at", "job_id"}
            ]
            rows = await conn.execute(
                text(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns)}")
            )
            tables[table] = [tuple(row) for row in rows]
    return tables


async def clear_redis_queue(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        keys = [settings.queue_name]
        async for key in redis.scan_iter(match="arq:*"):
            keys.append(key)
        await redis.delete(*keys)
    finally:
        await redis.aclose()
