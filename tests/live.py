"""A real ``dbsize`` API (and worker) in child processes, for tests that need a live server:
the browser tests and the schemathesis run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from dbsize.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_environ(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a child ``dbsize`` on the test run's database, Redis and queue."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DBSIZE_")}
    if settings.secret_key is not None:
        clean["DBSIZE_SECRET_KEY"] = settings.secret_key.get_secret_value()
    return clean | {
        "DBSIZE_DATABASE_URL": settings.database_url,
        "DBSIZE_REDIS_URL": settings.redis_url,
        "DBSIZE_QUEUE_NAME": settings.queue_name,
        "DBSIZE_CRON_ENABLED": "false",
        "DBSIZE_LOG_FORMAT": "json",
        **extra,
    }


@dataclass(frozen=True)
class LiveServer:
    url: str  # e.g. http://127.0.0.1:43123, no trailing slash
    log: Path  # the child's stdout and stderr, for failure messages


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def live_api(settings: Settings, log_dir: Path, **environ: str) -> Iterator[LiveServer]:
    """``dbsize serve`` on a free port of 127.0.0.1, ready (``/readyz`` 200) when yielded."""
    port = free_port()
    log = log_dir / f"api-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dbsize", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=child_environ(settings, **environ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, process, log, timeout=60)
            yield LiveServer(url, log)
        finally:
            _stop(process)


@contextmanager
def live_worker(settings: Settings, log_dir: Path) -> Iterator[Path]:
    """``dbsize worker`` on the test run's queue; yields its log file."""
    log = log_dir / f"worker-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dbsize", "worker"],
            env=child_environ(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield log
        finally:
            _stop(process)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dbsize serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"dbsize serve was not ready within {timeout} s:\n{log.read_text()}")
