"""`dbsize up`'s worker child: started with the API and restarted whenever it dies.

The worker rides out Redis and PostgreSQL outages itself (``worker.resilient``); this is the last
line for anything else (a crash, the OOM killer, a SIGKILL): the API keeps serving and the worker
is started again after a backoff that grows while it keeps dying quickly (1 s doubling to 30 s)
and starts over once a run has lasted a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

STABLE_RUN_SECONDS = 60.0
MAX_RESTART_DELAY_SECONDS = 30.0


def restart_delay(quick_deaths: int) -> float:
    """Seconds to wait before restarting after the ``quick_deaths``-th death in a row of a
    worker that ran less than a minute."""
    return min(MAX_RESTART_DELAY_SECONDS, float(2 ** max(0, quick_deaths - 1)))


class WorkerSupervisor:
    def __init__(
        self,
        command: list[str] | None = None,
        *,
        note: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    ) -> None:
        self.command = command or [sys.executable, "-m", "dbsize", "worker"]
        self.note = note
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._thread = threading.Thread(target=self._watch, name="worker-watch", daemon=True)

    def start(self) -> int:
        self._spawn()
        self._thread.start()
        assert self.child is not None
        return self.child.pid

    def _spawn(self) -> None:
        with self.lock:
            if not self.stopping.is_set():
                self.child = subprocess.Popen(self.command, env=os.environ.copy())

    def _watch(self) -> None:
        quick_deaths = 0
        while not self.stopping.is_set():
            child = self.child
            assert child is not None
            started = time.monotonic()
            code = child.wait()
            if self.stopping.is_set():
                return
            quick_deaths = (
                quick_deaths + 1 if time.monotonic() - started < STABLE_RUN_SECONDS else 1
            )
            delay = restart_delay(quick_deaths)
            self.note(
                f"the worker (pid {child.pid}) exited with code {code}; restarting it in "
                f"{delay:g} s (the API keeps serving)"
            )
            if self.stopping.wait(delay):
                return
            self._spawn()
            self.restarts += 1

    def stop(self, timeout: float = 15) -> None:
        with self.lock:
            self.stopping.set()
            child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
