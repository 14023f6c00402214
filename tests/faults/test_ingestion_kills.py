"""Ingestion killed mid-request: a client that disconnects half-way through its body and an API
process SIGKILLed while it writes a 20,000-row batch. Each batch is all or nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize.config import Settings
from dbsize.keys.tokens import Scope
from tests.conftest import make_key
from tests.faults.conftest import free_port, worker_env

ROWS = 20_000
KILL_DELAYS = (0.2, 0.5, 0.8, 1.2, 2.0)
TODAY = date.today()


def batch(instance: str) -> bytes:
    days = ROWS // 20
    samples = [
        {
            "instance_name": instance,
            "database_name": f"db-{d}",
            "collected_date": (TODAY - timedelta(days=i)).isoformat(),
            "size_mb": 1000 + i,
        }
        for d in range(20)
        for i in range(days)
    ]
    return json.dumps({"samples": samples}).encode()


def serve(settings: Settings, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dbsize", "serve", "--port", str(port)],
        env=worker_env(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("dbsize serve did not start")


async def stored(engine: AsyncEngine, instance: str) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM size_samples s JOIN instances i ON i.id = s.instance_id "
                    "WHERE i.name = :name"
                ),
                {"name": instance},
            )
            or 0
        )


async def register(engine: AsyncEngine, names: list[str]) -> None:
    async with engine.begin() as conn:
        for name in names:
            await conn.execute(
                text("INSERT INTO instances (name, db_type) VALUES (:n, 'postgresql')"),
                {"n": name},
            )


def request_head(port: int, key: str, length: int) -> bytes:
    return (
        f"POST /v1/size-samples HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def test_client_disconnect_half_way_and_5_server_sigkills_leave_each_batch_whole_or_absent(
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    names = ["disconnect", *(f"kill-{i}" for i in range(len(KILL_DELAYS)))]
    await register(engine, names)
    key = await make_key(sessionmaker, Scope.write)
    server, port = serve(settings, tmp_path / "api.log")
    try:
        body = batch("disconnect")
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(request_head(port, key, len(body)) + body[: len(body) // 2])
        time.sleep(1.0)  # let the server notice the disconnect
        assert server.poll() is None
    finally:
        server.kill()
        server.wait(10)
    outcomes = {"disconnect": await stored(engine, "disconnect")}
    for name, delay in zip(names[1:], KILL_DELAYS, strict=True):
        server, port = serve(settings, tmp_path / "api.log")
        body = batch(name)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(request_head(port, key, len(body)) + body)
            time.sleep(delay)
            server.kill()
            server.wait(10)
        outcomes[name] = await stored(engine, name)
    tally = Counter(
        "all" if n == ROWS else "none" if n == 0 else "PARTIAL" for n in outcomes.values()
    )
    figures = (
        f"client disconnect half-way: {outcomes['disconnect']} rows; "
        f"{len(KILL_DELAYS)} SIGKILLs of the API at {', '.join(map(str, KILL_DELAYS))} s into a "
        f"{ROWS:,}-row batch: {dict(tally)}"
    )
    assert outcomes["disconnect"] == 0, figures
    assert all(n in {0, ROWS} for n in outcomes.values()), f"{figures}: {outcomes}"
    print(f"FIGURES {figures}")
