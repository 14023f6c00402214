"""Aggregation rules: one period type over a scope, for a set of instances -> PeriodResult.

The job system calls :func:`aggregate_period` once per period type (each in its own
transaction, which for the incremental scope also advances that type's refresh state),
:func:`snapshot_changes` before the first one and :func:`commit_changes` in its final
transaction. Nothing here commits; the SQL lives in ``repository``/``statements``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation.plan import InvalidScope, WindowPlan, window_plan
from dbsize.aggregation.repository import (
    INCREMENTAL_SETTINGS,
    STATEMENT_SETTINGS,
    AggregationRepository,
)
from dbsize.aggregation.schemas import (
    AggregationScope,
    DateWindow,
    Level,
    PeriodError,
    PeriodResult,
    PeriodStatus,
    PeriodType,
    ScopeKind,
)
from dbsize.db import session_scope

# SQLSTATEs worth retrying: the same work can succeed later unchanged.
_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "53300",  # too_many_connections
        "25P03",  # idle_in_transaction_session_timeout
    }
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps (SQLAlchemy's ``orig``, explicit ``raise … from``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def is_transient_db_error(exc: BaseException) -> bool:
    """True when the caller should retry: the connection was lost, the server is shutting
    down, or PostgreSQL aborted the transaction for a serialization failure or deadlock."""
    for error in _causes(exc):
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08")
        ):
            return True
        if isinstance(
            error,
            asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.InterfaceError
            | ConnectionError
            | TimeoutError,
        ):
            return True
    return False


def _error_code(exc: BaseException) -> str:
    for error in _causes(exc):
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate
    return type(exc).__name__


def _error_detail(exc: BaseException) -> str:
    for error in _causes(exc):
        if isinstance(error, asyncpg.PostgresError):
            table = getattr(error, "table_name", None)
            message = str(error.args[0] if error.args else error)
            return f"{message} (table {table})" if table else message
    return str(exc)[:1000]


@dataclass(frozen=True)
class _Written:
    database_rows: int
    instance_rows: int
    window: DateWindow | None
    covered: frozenset[int]


@dataclass
class _Progress:
    """Which level's statement is running, so a failure can name it."""

    level: Level | None = None


async def aggregate_period(
    session: AsyncSession,
    period_type: PeriodType,
    scope: AggregationScope,
    instance_ids: Sequence[int],
    *,
    job_id: uuid.UUID | None,
    today: date,
    trend_threshold_percent: float = 5.0,
) -> PeriodResult:
    """Compute and write both levels of ``period_type`` over ``scope`` for ``instance_ids``.

    Runs inside a savepoint: a failure rolls back only this period's writes and leaves the
    caller's transaction usable. Never commits. For the incremental scope the same savepoint
    advances this type's refresh state (decision 0001). ``today`` (the caller's date in
    ``DBSIZE_TIMEZONE``) decides ``is_complete``. Returns a failed result for an invalid scope
    and for any error of the data or the statements; raises only what
    :func:`is_transient_db_error` says the caller should retry.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    requested = tuple(sorted(set(instance_ids)))

    def failed(error: PeriodError) -> PeriodResult:
        return PeriodResult(
            period_type=period_type,
            scope_kind=scope.kind,
            status=PeriodStatus.failed,
            window=None,
            instance_ids=requested,
            duration_ms=_elapsed_ms(started),
            started_at=started_at,
            error=error,
        )

    try:
        _validate(period_type, scope)
    except InvalidScope as exc:
        return failed(PeriodError(code="invalid_scope", detail=str(exc)))
    progress = _Progress()
    try:
        async with session.begin_nested():
            repo = AggregationRepository(session)
            previous = await repo.apply_settings(
                INCREMENTAL_SETTINGS if scope.kind is ScopeKind.incremental else STATEMENT_SETTINGS
            )
            written = await _write(
                repo,
                period_type,
                scope,
                requested,
                job_id=job_id,
                today=today,
                trend_threshold_percent=trend_threshold_percent,
                progress=progress,
            )
            if scope.kind is ScopeKind.incremental:
                assert scope.change_watermark is not None  # _validate
                # With the rows it describes: this period type has aggregated every change up
                # to the watermark, in the same commit (or rollback) as its rows.
                await repo.advance_refresh_state(period_type, requested, scope.change_watermark)
            elif scope.change_watermark is not None and written.window is not None:
                # The same rule for a window scope: every period of the window (and the one
                # after it) was recomputed from samples that include every change up to the
                # snapshot, so the changes within the window are aggregated for this type.
                await repo.record_coverage(
                    period_type, requested, written.window, scope.change_watermark, job_id
                )
            await repo.restore_settings(previous)
    except Exception as exc:
        if is_transient_db_error(exc):
            raise
        # No log line here: the job logs one event per (job, period) outcome, with this error.
        return failed(
            PeriodError(code=_error_code(exc), detail=_error_detail(exc), level=progress.level)
        )
    return PeriodResult(
        period_type=period_type,
        scope_kind=scope.kind,
        status=PeriodStatus.succeeded,
        window=written.window,
        database_rows=written.database_rows,
        instance_rows=written.instance_rows,
        instance_ids=tuple(i for i in requested if i in written.covered),
        instance_ids_without_samples=tuple(i for i in requested if i not in written.covered),
        duration_ms=_elapsed_ms(started),
        started_at=started_at,
    )


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
    """Run :func:`aggregate_period` for each period type, each in its own transaction and
    session, up to ``concurrency`` at once (no period type reads another's rows).

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


# JIT compilation of a window statement costs 0.1-0.3 s (its cost estimate, inflated by
# enable_nestloop = off, always asks for inlining and optimisation). It pays on a fleet-wide
# chunk (a quarter of 1,000 instances: 11.7 s -> 9.7 s), not on a few instances: a 20-instance
# quarter ran 0.1-0.25 s faster without it.
JIT_MIN_INSTANCE_DAYS = 20_000


def _worth_jit(instance_count: int, plan: WindowPlan) -> bool:
    longest_read = max((c.read.end - c.read.start).days + 1 for c in plan.chunks)
    return instance_count * longest_read >= JIT_MIN_INSTANCE_DAYS


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _validate(period_type: PeriodType, scope: AggregationScope) -> None:
    if scope.kind is ScopeKind.incremental:
        if scope.change_watermark is None:
            raise InvalidScope(
                "an incremental scope needs a change watermark (prepare_incremental)"
            )
    else:
        window_plan(period_type, scope)


async def _write(
    repo: AggregationRepository,
    period_type: PeriodType,
    scope: AggregationScope,
    instance_ids: tuple[int, ...],
    *,
    job_id: uuid.UUID | None,
    today: date,
    trend_threshold_percent: float,
    progress: _Progress,
) -> _Written:
    if scope.kind is ScopeKind.incremental:
        return await _write_incremental(
            repo,
            period_type,
            scope,
            instance_ids,
            job_id=job_id,
            today=today,
            trend_threshold_percent=trend_threshold_percent,
            progress=progress,
        )
    plan = window_plan(period_type, scope, instance_count=len(instance_ids))
    database_rows = instance_rows = 0
    if instance_ids:
        worth_jit = _worth_jit(len(instance_ids), plan)
        # Daily database rows are samples copied with one subtraction: nothing for JIT to speed
        # up, and its estimate made it inline and optimise (0.4 s of compilation per chunk).
        await repo.use_jit(worth_jit and period_type is not PeriodType.daily)
        progress.level = Level.database
        for chunk in plan.chunks:
            database_rows += await repo.merge_database_window(
                period_type,
                instance_ids,
                chunk.read,
                chunk.write_start,
                today=today,
                job_id=job_id,
            )
        await repo.use_jit(worth_jit)
        progress.level = Level.instance
        for chunk in plan.chunks:
            instance_rows += await repo.merge_instance_window(
                period_type,
                instance_ids,
                chunk.read,
                chunk.write_start,
                today=today,
                job_id=job_id,
                trend_threshold_percent=trend_threshold_percent,
            )
        progress.level = None
    covered = await repo.instances_with_rows(period_type, instance_ids, plan.window)
    return _Written(database_rows, instance_rows, plan.window, frozenset(covered))


async def _write_incremental(
    repo: AggregationRepository,
    period_type: PeriodType,
    scope: AggregationScope,
    instance_ids: tuple[int, ...],
    *,
    job_id: uuid.UUID | None,
    today: date,
    trend_threshold_percent: float,
    progress: _Progress,
) -> _Written:
    assert scope.change_watermark is not None  # _validate
    watermark = scope.change_watermark
    targets = await repo.incremental_targets(period_type, instance_ids, watermark, today)
    database_rows = instance_rows = 0
    if targets.count:
        progress.level = Level.database
        database_rows = await repo.merge_database_targets(
            period_type, instance_ids, targets, today=today, job_id=job_id
        )
        progress.level = Level.instance
        instance_rows = await repo.merge_instance_targets(
            period_type,
            instance_ids,
            targets,
            today=today,
            job_id=job_id,
            trend_threshold_percent=trend_threshold_percent,
        )
        progress.level = None
    # Every target instance has rows now: a target is a period with new samples (samples are
    # never deleted), or a stored one. Only the others are looked up: one with statistics but
    # nothing pending is up to date, covered, not skipped. (Probing all of them cost 5-90 ms
    # a night: the first daily row of each instance was a page read of its own.)
    with_targets = set(targets.arrays.get("t_instance", ()))
    others = [i for i in instance_ids if i not in with_targets]
    covered = with_targets | await repo.instances_with_rows(period_type, others, None)
    return _Written(database_rows, instance_rows, targets.window, frozenset(covered))


async def snapshot_changes(session: AsyncSession, scope: AggregationScope) -> AggregationScope:
    """``scope`` with the snapshot of the sample changes one job aggregates: every change with
    an id up to the returned scope's ``change_watermark``, in every period call of the job.

    For an incremental scope these are the changes it reads; for a range or as-of scope, the
    changes it consumes where it covers them (every one committed before the snapshot, so
    every statement of the job reads its samples)."""
    watermark = await AggregationRepository(session).settled_change_watermark()
    return replace(scope, change_watermark=watermark)


async def prepare_incremental(session: AsyncSession) -> AggregationScope:
    """The incremental scope of one job, with its snapshot (:func:`snapshot_changes`)."""
    return await snapshot_changes(session, AggregationScope(kind=ScopeKind.incremental))


async def commit_changes(
    session: AsyncSession, scope: AggregationScope, results: Sequence[PeriodResult]
) -> None:
    """Delete the sample changes that all four period types have aggregated; call it in the
    job's final transaction, with the scope from :func:`snapshot_changes`.

    Each period type that succeeded advanced its refresh state (incremental) or recorded what
    it covered (range, as-of) in its own transaction, with its rows (:func:`aggregate_period`);
    a failed one recorded nothing, so its changes stay pending and the next run redoes them.
    Periods that ended since the last refresh need no bookkeeping: the next run finds their
    rows by ``is_complete = false``.
    """
    if scope.change_watermark is None:
        raise ValueError("commit_changes needs the scope from snapshot_changes")
    advanced = {
        instance_id
        for result in results
        if result.succeeded
        for instance_id in (*result.instance_ids, *result.instance_ids_without_samples)
    }
    if advanced:
        await AggregationRepository(session).delete_consumed_changes(advanced)
