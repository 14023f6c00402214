"""`dbsize serve --workers N`: N API processes share the port."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dbsize.config import Settings
from tests.live import child_environ, free_port


def test_two_processes_answer_on_one_port_and_stop(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "api.log"
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "dbsize", "serve", "--port", str(port), "--workers", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=child_environ(settings), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            started: set[str] = set()
            # Both processes have started once each logged it (the supervisor forks them).
            while len(started) < 2 and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                started = set(re.findall(r"Started server process \[(\d+)\]", log.read_text()))
                time.sleep(0.1)
            answers = [httpx.get(f"{url}/healthz", timeout=10).status_code for _ in range(20)]
        finally:
            process.terminate()
            code = process.wait(timeout=30)
    assert len(started) == 2, log.read_text()
    assert answers == [200] * 20
    assert code == 0, log.read_text()
