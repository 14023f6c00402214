"""Several period types of one job: each in its own session and transaction, a bounded number
at a time. The engine computes one period type in one transaction (``aggregation.service``);
running several is the job's business."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation.schemas import AggregationScope, PeriodResult, PeriodType
from dbsize.aggregation.service import aggregate_period
from dbsize.db import session_scope

MayStart = Callable[[PeriodType], Awaitable[bool]]
BeforeCommit = Callable[[AsyncSession, PeriodResult], Awaitable[None]]


async def aggregate_periods(
    sessionmaker: async_sessionmaker[AsyncSession],
    period_types: Sequence[PeriodType],
    scope: AggregationScope,
    instance_ids: Sequence[int],
    *,
    job_id: uuid.UUID | None,
    today: date,
    trend_threshold_percent: float = 5.0,
    concurrency: int = 1,
    may_start: MayStart | None = None,
    before_commit: BeforeCommit | None = None,
) -> list[PeriodResult]:
    """Run ``aggregate_period`` for each period type, each in its own transaction and
    session, up to ``concurrency`` at once (no period type reads another's rows). The engine
    computes one period type in one transaction; running several is the job's business.

    ``may_start(period_type)`` is awaited before a period starts; False skips it (a cancel),
    and that period has no result. ``before_commit(session, result)`` runs inside the period's
    transaction and may raise to roll it back (a lost lease). Results come back in the order of
    ``period_types``. If any period raises, the others are cancelled and the error propagates.
    """
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(period_type: PeriodType) -> PeriodResult | None:
        async with slots:
            if may_start is not None and not await may_start(period_type):
                return None
            async with session_scope(sessionmaker) as session:
                result = await aggregate_period(
                    session,
                    period_type,
                    scope,
                    instance_ids,
                    job_id=job_id,
                    today=today,
                    trend_threshold_percent=trend_threshold_percent,
                )
                if before_commit is not None:
                    await before_commit(session, result)
            return result

    # asyncio.Semaphore wakes waiters first in, first out: periods start in the given order.
    tasks = [asyncio.create_task(one(period_type)) for period_type in period_types]
    try:
        results = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [result for result in results if result is not None]
