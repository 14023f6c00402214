"""arq worker construction: resources are created once at start-up and passed in ``ctx``."""

from __future__ import annotations

from typing import Any

from arq.worker import Worker

from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker
from dbsize.redis import redis_settings


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["engine"] = create_engine(settings.database_url)
    ctx["sessionmaker"] = create_sessionmaker(ctx["engine"])


async def _shutdown(ctx: dict[str, Any]) -> None:
    await ctx["engine"].dispose()


async def noop(ctx: dict[str, Any]) -> None:
    """Placeholder until the aggregation task lands."""


def build_worker(settings: Settings, *, burst: bool = False) -> Worker:
    return Worker(
        functions=[noop],
        queue_name=settings.queue_name,
        redis_settings=redis_settings(settings.redis_url),
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
        burst=burst,
        poll_delay=settings.worker_poll_delay_seconds,
        max_jobs=settings.worker_max_jobs,
    )
