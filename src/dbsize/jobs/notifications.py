"""Wake long-polls and event streams the moment a job changes.

A trigger on ``aggregation_jobs`` sends ``NOTIFY dbsize_job_changed, '<job id> <status>'`` with
every committed change (migration 0004). The API holds one listening connection and wakes the
requests waiting on that job. A notification is only a hint: a woken request re-reads the
ledger, and every wait also times out to a plain re-read, so a lost listening connection costs
latency, never the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.jobs.models import TERMINAL_JOB_STATUSES
from dbsize.logging import get_logger

CHANNEL = "dbsize_job_changed"
RECONNECT_SECONDS = 5.0

_TERMINAL = frozenset(status.value for status in TERMINAL_JOB_STATUSES)

log = get_logger("dbsize.jobs.notifications")


class JobSubscription:
    def __init__(self, *, terminal_only: bool) -> None:
        self._changed = asyncio.Event()
        self._terminal_only = terminal_only

    def notify(self, status: str | None) -> None:
        """``status`` None: something may have changed (the feed reconnected)."""
        if status is None or not self._terminal_only or status in _TERMINAL:
            self._changed.set()

    async def changed_within(self, seconds: float) -> bool:
        """Wait until the job changes or ``seconds`` pass; True if it changed."""
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            return False
        self._changed.clear()
        return True


class JobChangeFeed:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._subscriptions: defaultdict[str, set[JobSubscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="job-change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(
        self, job_id: uuid.UUID, *, terminal_only: bool = False
    ) -> AsyncIterator[JobSubscription]:
        """Subscribe *before* reading the job, so a change between the read and the wait
        still wakes the wait. ``terminal_only``: wake only when the job has ended (a poll
        for the outcome need not re-read every heartbeat and progress step)."""
        key = str(job_id)
        subscription = JobSubscription(terminal_only=terminal_only)
        self._subscriptions[key].add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions[key].discard(subscription)
            if not self._subscriptions[key]:
                del self._subscriptions[key]

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        job_id, _, status = payload.partition(" ")
        for subscription in self._subscriptions.get(job_id, ()):
            subscription.notify(status or None)

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down: retry, polls still work
                log.warning("job_change_feed_lost", error=f"{type(exc).__name__}: {exc}")
            self.listening.clear()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen_once(self) -> None:
        async with self._engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _conn: lost.set())
            await driver.add_listener(CHANNEL, self._on_notification)
            self.listening.set()
            # Wake everyone once: a change made while the feed was down was not notified.
            for subscriptions in list(self._subscriptions.values()):
                for subscription in subscriptions:
                    subscription.notify(None)
            try:
                await lost.wait()
            finally:
                if not driver.is_closed():
                    await driver.remove_listener(CHANNEL, self._on_notification)
