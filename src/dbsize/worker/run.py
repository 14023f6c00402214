"""Start the arq worker in this process (``dbsize worker``).

The worker rides out outages in its poll loop (``worker.resilient``); this loop also covers the
start-up (arq gives up connecting to Redis after a few tries) and anything that still escapes
because a server is unreachable: the worker is built again after a capped backoff instead of
exiting. Any other error ends the process (``dbsize up`` restarts it).
"""

from __future__ import annotations

import time

from dbsize.config import Settings
from dbsize.errors import unavailable_dependency
from dbsize.logging import configure_logging, get_logger
from dbsize.worker.resilient import backoff_seconds
from dbsize.worker.settings import build_worker

log = get_logger("dbsize.worker")


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    configure_logging(settings.log_format, settings.log_level)
    failures = 0
    while True:
        worker = build_worker(settings, burst=burst)
        try:
            worker.run()
            return
        except Exception as exc:
            dependency = unavailable_dependency(exc)
            if burst or dependency is None:
                raise
            failures += 1
            delay = backoff_seconds(failures)
            log.warning(
                "worker_restarting",
                dependency=dependency,
                error=f"{type(exc).__name__}: {exc}",
                retry_in=delay,
            )
            time.sleep(delay)
