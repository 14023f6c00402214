"""Aggregation rules: one period type over a scope, in one transaction -> one PeriodResult.

:func:`aggregate_period` plans the period type's writes (``aggregation.writes``, pure) and has
the repository execute them; in the same transaction, the incremental scope advances that
type's refresh state and a range or as-of scope records what it covered. The job runner
(``jobs.runner``) orchestrates several period types: :func:`snapshot_changes` first,
:func:`aggregate_period` once per period type, each in its own transaction and session, then
:func:`commit_changes` in its final transaction. Nothing here commits; the SQL lives in
``aggregation.sql``, run by ``repository``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.aggregation.changes import ChangeRepository
from dbsize.aggregation.plan import InvalidScope, window_plan
from dbsize.aggregation.repository import (
    INCREMENTAL_SETTINGS,
    STATEMENT_SETTINGS,
    AggregationRepository,
    WriteContext,
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
from dbsize.aggregation.writes import plan_targets, plan_window

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
                await ChangeRepository(session).advance_refresh_state(
                    period_type, requested, scope.change_watermark
                )
            elif scope.change_watermark is not None and written.window is not None:
                # The same rule for a window scope: every period of the window (and the one
                # after it) was recomputed from samples that include every change up to the
                # snapshot, so the changes within the window are aggregated for this type.
                await ChangeRepository(session).record_coverage(
                    period_type, requested, written.window, scope.change_watermark, job_id
                )
            if written.database_rows or written.instance_rows:
                # Last, so that the row lock (a concurrent job's same period type waits for
                # it) is held only until this transaction commits.
                await repo.bump_statistics_version(period_type, today)
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
    """Plan the period type's writes (``aggregation.writes``, pure), execute them in order,
    and say which requested instances have statistics."""
    context = WriteContext(instance_ids, today, job_id, trend_threshold_percent)
    if scope.kind is ScopeKind.incremental:
        assert scope.change_watermark is not None  # _validate
        targets = await repo.incremental_targets(
            period_type, instance_ids, scope.change_watermark, today
        )
        context = replace(context, targets=targets)
        planned = plan_targets(targets, today)
        window = targets.window
    else:
        plan = window_plan(period_type, scope, instance_count=len(instance_ids))
        planned = plan_window(period_type, plan, instance_ids)
        window = plan.window
    rows = dict.fromkeys(Level, 0)
    for write in planned:
        progress.level = write.level
        rows[write.level] += await repo.execute(write, context)
    progress.level = None
    if context.targets is None:
        await repo.analyze_if_never_analyzed(period_type)
        covered = await repo.instances_with_rows(period_type, instance_ids, window)
        return _Written(rows[Level.database], rows[Level.instance], window, frozenset(covered))
    # Every target instance has rows now: a target is a period with new samples (samples are
    # never deleted), or a stored one. Only the others are looked up: one with statistics but
    # nothing pending is up to date, covered, not skipped. (Probing all of them cost 5-90 ms
    # a night: the first daily row of each instance was a page read of its own.)
    with_targets = set(context.targets.arrays.get("t_instance", ()))
    others = [i for i in instance_ids if i not in with_targets]
    covered = with_targets | await repo.instances_with_rows(period_type, others, None)
    return _Written(rows[Level.database], rows[Level.instance], window, frozenset(covered))


async def snapshot_changes(session: AsyncSession, scope: AggregationScope) -> AggregationScope:
    """``scope`` with the snapshot of the sample changes one job aggregates: every change with
    an id up to the returned scope's ``change_watermark``, in every period call of the job.

    For an incremental scope these are the changes it reads; for a range or as-of scope, the
    changes it consumes where it covers them (every one committed before the snapshot, so
    every statement of the job reads its samples)."""
    watermark = await ChangeRepository(session).settled_change_watermark()
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
        await ChangeRepository(session).delete_consumed_changes(advanced)
