"""Start the arq worker in this process (``dbsize worker``)."""

from __future__ import annotations

from arq.worker import Worker

from dbsize.config import Settings
from dbsize.logging import configure_logging
from dbsize.worker.settings import build_worker


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    configure_logging(settings.log_format, settings.log_level)
    worker: Worker = build_worker(settings, burst=burst)
    worker.run()
