"""Every query of the aggregation engine. Services call these; nothing here commits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize import periods
from dbsize.aggregation import statements
from dbsize.aggregation.schemas import DateWindow, PeriodType
from dbsize.db import set_local

# Session settings for the aggregation statements, set LOCAL (transaction-scoped) and restored
# afterwards. Measured on the 7.3M-sample fleet (docs/benchmarks/aggregation.md):
# - work_mem: the hash aggregate and window sort of one chunk stay in memory instead of spilling;
# - force_custom_plan: these statements are prepared once per pooled connection, and a generic
#   plan would be planned blind to the instance array and the date window;
# - enable_nestloop off: rows written minutes ago have no statistics yet, and on such an
#   underestimate the planner joined the MERGE source to its target with a nested loop over a
#   materialized target: 20,000 x 20,000 comparisons, 41 s instead of 0.3 s. Hash joins cost the
#   same whatever the estimate. (LATERAL reads and subqueries still run as nested loops: they
#   have no other plan.)
# - jit off for the incremental statements: compiling cost 0.3-2.3 s, more than such a
#   statement runs; a window scope turns it on only when it reads a fleet's worth of days
#   (service._worth_jit), where JIT pays;
# - enable_mergejoin off: hashing a few thousand rows (incremental) is cheaper than sorting them
#   for a merge join, and so is hashing a month of samples to find each one's previous day
#   (daily window: 6.6-7.1 s per month of the fleet against 8.3 s with the merge join the
#   planner chose).
# Parallel workers are not set: PostgreSQL never runs a data-modifying statement in parallel.
STATEMENT_SETTINGS: dict[str, str] = {
    "jit": "on",
    "work_mem": "256MB",
    "plan_cache_mode": "force_custom_plan",
    "enable_nestloop": "off",
    "enable_mergejoin": "off",
}
INCREMENTAL_SETTINGS: dict[str, str] = {**STATEMENT_SETTINGS, "jit": "off"}

_PARAM_TYPES = {
    "ids": "integer[]",
    "read_start": "date",
    "read_end": "date",
    "write_start": "date",
    "write_end": "date",
    "today": "date",
    "job_id": "uuid",
    "threshold": "numeric",
    "watermark": "bigint",
    "t_instance": "integer[]",
    "t_start": "date[]",
    "t_read_from": "date[]",
    "t_read_to": "date[]",
    "t_merge": "boolean[]",
    "t_prev_target": "boolean[]",
}
_PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z_]+)\b")


@dataclass(frozen=True)
class Compiled:
    """A statement with ``:name`` placeholders turned into typed ``$n`` parameters."""

    sql: str
    names: tuple[str, ...]

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


@lru_cache(maxsize=128)
def compile_statement(sql: str) -> Compiled:
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}::{_PARAM_TYPES[name]}"

    return Compiled(_PLACEHOLDER.sub(number, sql), tuple(names))


def _merged_rows(status: str) -> int:
    """Rows written, from the command tag: 'MERGE 42', 'INSERT 0 42' (into an empty range) or
    'UPDATE 42'."""
    verb, _, count = status.rpartition(" ")
    if verb not in ("MERGE", "INSERT 0", "UPDATE"):
        raise RuntimeError(f"unexpected command status {status!r}")
    return int(count)


# Reads within a week (first to last day at most 7 days) are done with one range scan
# (Targets.narrow).
NARROW_DAYS = 7


@dataclass(frozen=True)
class Targets:
    """An incremental run's (instance, period) targets for one period type."""

    period_type: PeriodType
    count: int
    window: DateWindow | None
    """First period_start to last period_end of the targets; None when there are none."""
    arrays: dict[str, list[Any]]
    """Parallel arrays (``statements.TARGET_ARRAYS``), bound as parameters."""
    read: DateWindow | None = None
    """First to last day that some target reads samples of; None when none reads any."""
    one_day: bool = False
    """Every target reads the samples of a single day."""
    unstored: bool = False
    """No target has stored rows (a night's new day, week, month or quarter): its rows are
    INSERTed, without the MERGE's join with its target and per-row WHEN."""
    reads_unstored: bool = False
    """No target that reads samples has stored rows (the others may only become complete)."""

    @property
    def narrow(self) -> bool:
        """The reads lie within a few days: read them with one range scan, not per target.
        A week of a fleet's days costs about what a thousand targets' index scans do."""
        return self.read is not None and (self.read.end - self.read.start).days < NARROW_DAYS

    def shape(self, *, database: bool) -> dict[str, bool]:
        """Which parts the target statements need (the flags of ``statements.database_targets``
        or, without ``database``, ``instance_targets``): the self-join for targets whose
        previous period is a target too, the sort for targets that are (re)read whole (new
        rows), the range scan for narrow reads, and at the database level the stored rows for
        merged targets and the grouping of reads longer than a day. On the usual night (one
        new day) most of them are left out."""
        shape = {
            "prev_targets": any(self.arrays.get("t_prev_target", ())),
            "inserts": not all(self.arrays.get("t_merge", ())),
            "narrow": self.narrow,
        }
        if database:
            shape |= {"merges": self.merges, "one_day": self.one_day}
        return shape

    @property
    def merges(self) -> bool:
        """Some target combines its stored rows with new samples (or only flips is_complete)."""
        return any(self.arrays.get("t_merge", ()))

    @property
    def appends(self) -> bool:
        """Every target is merged and reads at most one day, and none follows another (the
        usual night's current week, month and quarter): each database's sample is appended to
        its stored row (``statements.database_appends``)."""
        return (
            self.one_day
            and self.narrow
            and all(self.arrays.get("t_merge", ()))
            and not any(self.arrays.get("t_prev_target", ()))
        )

    def ended(self, today: date) -> bool:
        """Some target's period has ended (its rows are, or become, complete)."""
        return (
            self.window is not None
            and self.window.start < today
            and any(
                periods.period_end(self.period_type, start) < today
                for start in self.arrays.get("t_start", ())
            )
        )

    @property
    def single_day(self) -> date | None:
        """When every target that reads samples reads the same single day, and every other
        target is a period that has ended and starts no later than that day's (only its
        ``is_complete`` can change: it follows no target that reads): that day. The usual night,
        and the night after a same-day run, whose day, week, month or quarter has ended since."""
        if self.read is None or self.read.start != self.read.end:
            return None
        day = self.read.start
        start = periods.period_start(self.period_type, day)
        arrays = self.arrays
        targets = zip(arrays["t_start"], arrays["t_read_from"], arrays["t_read_to"], strict=True)
        if any(t_start > start for t_start, first, last in targets if first > last):
            return None
        return day

    @property
    def reading_instances(self) -> list[int]:
        """Instances of the targets that read samples."""
        targets = zip(
            self.arrays["t_instance"],
            self.arrays["t_read_from"],
            self.arrays["t_read_to"],
            strict=True,
        )
        return sorted({instance for instance, first, last in targets if first <= last})

    @property
    def opening_day(self) -> date | None:
        """:attr:`single_day` of a week, month or quarter when no target that reads has stored
        rows (a night's new period): each database's row is then its one sample
        (``statements.database_opening``)."""
        if self.period_type is PeriodType.daily or not self.reads_unstored:
            return None
        return self.single_day

    @property
    def single_day_read(self) -> DateWindow | None:
        """:attr:`single_day` of the daily period: the window statement's read for it, that day
        and the one before (its change)."""
        if self.period_type is not PeriodType.daily or (day := self.single_day) is None:
            return None
        return DateWindow(day - timedelta(days=1), day)


class AggregationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _driver(self) -> Any:
        """The asyncpg connection under the session's current transaction (and savepoint)."""
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        return raw.driver_connection

    async def _merge(self, sql: str, values: dict[str, Any]) -> int:
        """Rows written by a MERGE, INSERT or UPDATE. Run on the driver: SQLAlchemy does not
        report a MERGE's row count, the driver returns its command tag."""
        compiled = compile_statement(sql)
        status: str = await (await self._driver()).execute(compiled.sql, *compiled.args(values))
        return _merged_rows(status)

    async def apply_settings(self, settings: dict[str, str]) -> dict[str, str]:
        """SET LOCAL ``settings``; returns the previous values for :meth:`restore_settings`."""
        names = list(settings)
        row = (
            await self.session.execute(
                text("SELECT " + ", ".join(f"current_setting('{n}')" for n in names))
            )
        ).one()
        await self._set(settings)
        return dict(zip(names, row, strict=True))

    async def restore_settings(self, previous: dict[str, str]) -> None:
        await self._set(previous)

    async def use_jit(self, enabled: bool) -> None:
        """Local to the transaction, like the other settings (restored with them)."""
        await self._set({"jit": "on" if enabled else "off"})

    async def _set(self, settings: dict[str, str]) -> None:
        await set_local(self.session, settings)

    # -- window scopes (as-of, range) --------------------------------------------------------

    async def merge_database_window(
        self,
        period_type: PeriodType,
        instance_ids: Sequence[int],
        read: DateWindow,
        write_start: date,
        *,
        today: date,
        job_id: uuid.UUID | None,
        into_empty: bool | None = None,
    ) -> int:
        """``into_empty``: whether the write range is known to be empty; None looks."""
        empty = into_empty
        if empty is None:
            empty = await self._range_is_empty(
                "database_size_aggregations", period_type, instance_ids, write_start, read.end
            )
        return await self._merge(
            statements.database_window(period_type, into_empty=empty),
            {
                "ids": list(instance_ids),
                "read_start": read.start,
                "read_end": read.end,
                "write_start": write_start,
                "write_end": read.end,
                "today": today,
                "job_id": job_id,
            },
        )

    async def merge_instance_window(
        self,
        period_type: PeriodType,
        instance_ids: Sequence[int],
        read: DateWindow,
        write_start: date,
        *,
        today: date,
        job_id: uuid.UUID | None,
        trend_threshold_percent: float,
        into_empty: bool | None = None,
    ) -> int:
        """``into_empty``: whether the write range is known to be empty; None looks."""
        empty = into_empty
        if empty is None:
            empty = await self._range_is_empty(
                "instance_size_aggregations", period_type, instance_ids, write_start, read.end
            )
        return await self._merge(
            statements.instance_window(period_type, into_empty=empty),
            {
                "ids": list(instance_ids),
                "read_start": read.start,
                "read_end": read.end,
                "write_start": write_start,
                "write_end": read.end,
                "today": today,
                "job_id": job_id,
                "threshold": Decimal(str(trend_threshold_percent)),
            },
        )

    async def _range_is_empty(
        self,
        table: str,
        period_type: PeriodType,
        instance_ids: Sequence[int],
        start: date,
        end: date,
    ) -> bool:
        """No statistics row of these instances in [start, end]: the window can be INSERTed.
        Safe from a concurrent writer: jobs hold their instances' locks (jobs.locks)."""
        assert table in ("database_size_aggregations", "instance_size_aggregations")
        found = await self.session.scalar(
            text(
                f"SELECT EXISTS (SELECT FROM {table} WHERE instance_id = ANY(:ids) "
                "AND period_type = :pt AND period_start BETWEEN :start AND :end)"
            ),
            {"ids": list(instance_ids), "pt": period_type.value, "start": start, "end": end},
        )
        return not found

    async def instances_with_rows(
        self, period_type: PeriodType, instance_ids: Sequence[int], window: DateWindow | None
    ) -> set[int]:
        """Requested instances that have instance-level statistics of this type (in window)."""
        if not instance_ids:
            return set()
        in_window = "AND a.period_start BETWEEN :start AND :end" if window else ""
        # A scalar subquery per instance (one index probe), not a semi-join over a partition.
        query = text(
            f"""
            SELECT i FROM unnest(CAST(:ids AS integer[])) AS i
            WHERE (SELECT true FROM instance_size_aggregations AS a
                   WHERE a.instance_id = i AND a.period_type = :pt {in_window} LIMIT 1)
            """
        )
        params: dict[str, Any] = {"ids": list(instance_ids), "pt": period_type.value}
        if window:
            params |= {"start": window.start, "end": window.end}
        return set((await self.session.scalars(query, params)).all())

    # -- incremental scope -------------------------------------------------------------------

    async def incremental_targets(
        self, period_type: PeriodType, instance_ids: Sequence[int], watermark: int, today: date
    ) -> Targets:
        """The (instance, period) pairs pending for this period type, fixed for both levels."""
        compiled = compile_statement(statements.incremental_targets(period_type))
        row = await (await self._driver()).fetchrow(
            compiled.sql,
            *compiled.args({"ids": list(instance_ids), "watermark": watermark, "today": today}),
        )
        if not row[0]:
            return Targets(period_type, count=0, window=None, arrays={})
        arrays = dict(zip(statements.TARGET_ARRAYS, row[3:-5], strict=True))
        read_start, read_end, one_day, unstored, reads_unstored = row[-5:]
        return Targets(
            period_type,
            count=int(row[0]),
            window=DateWindow(row[1], row[2]),
            arrays=arrays,
            read=DateWindow(read_start, read_end) if read_start is not None else None,
            one_day=bool(one_day),
            unstored=bool(unstored),
            reads_unstored=bool(reads_unstored),
        )

    async def merge_database_targets(
        self,
        period_type: PeriodType,
        instance_ids: Sequence[int],
        targets: Targets,
        *,
        today: date,
        job_id: uuid.UUID | None,
    ) -> int:
        table = "database_size_aggregations"
        values = self._target_values(instance_ids, targets) | {"today": today, "job_id": job_id}
        if targets.read is None:
            # Nothing to read (no new samples): every target is a period that has only ended.
            return await self._complete_ended(table, targets, values)
        if (read := targets.single_day_read) is not None:
            # The day's samples (a night's new day): the window statement over that day copies
            # them and hash-joins the previous day's, without the targets' general machinery
            # (measured: 0.20-0.26 s against 0.46 s for 20,000 rows).
            written = await self.merge_database_window(
                period_type,
                targets.reading_instances,
                read,
                read.end,
                today=today,
                job_id=job_id,
                into_empty=targets.reads_unstored,
            )
        elif (day := targets.opening_day) is not None:
            written = await self._merge(
                statements.database_opening(period_type),
                {
                    "ids": targets.reading_instances,
                    "read_start": day,
                    "read_end": day,
                    "write_start": periods.period_start(period_type, day),
                    "today": today,
                    "job_id": job_id,
                },
            )
        elif targets.appends:
            written = await self._merge(statements.database_appends(period_type), values)
        else:
            return await self._merge(
                statements.database_targets(
                    period_type,
                    **targets.shape(database=True),
                    into_empty=targets.unstored,
                ),
                values,
            )
        return written + await self._complete_ended(table, targets, values)

    async def merge_instance_targets(
        self,
        period_type: PeriodType,
        instance_ids: Sequence[int],
        targets: Targets,
        *,
        today: date,
        job_id: uuid.UUID | None,
        trend_threshold_percent: float,
    ) -> int:
        table = "instance_size_aggregations"
        values = self._target_values(instance_ids, targets) | {
            "today": today,
            "job_id": job_id,
            "threshold": Decimal(str(trend_threshold_percent)),
        }
        if targets.read is None:
            return await self._complete_ended(table, targets, values)
        if (read := targets.single_day_read) is not None:
            written = await self.merge_instance_window(
                period_type,
                targets.reading_instances,
                read,
                read.end,
                today=today,
                job_id=job_id,
                trend_threshold_percent=trend_threshold_percent,
                into_empty=targets.reads_unstored,
            )
        elif targets.appends:
            written = await self._merge(statements.instance_appends(period_type), values)
        else:
            # Also a new period's instance rows (1,000 rows a night: no shortcut of its own).
            return await self._merge(
                statements.instance_targets(
                    period_type,
                    **targets.shape(database=False),
                    into_empty=targets.unstored,
                ),
                values,
            )
        return written + await self._complete_ended(table, targets, values)

    async def _complete_ended(self, table: str, targets: Targets, values: dict[str, Any]) -> int:
        """After a one-day statement (new day, new period, appends), which writes only the
        rows of the targets that read, or alone when no target reads: mark complete the rows
        of ended targets that it did not write, their only change (``Targets.single_day``,
        ``Targets.appends``)."""
        if not targets.ended(values["today"]):
            return 0
        return await self._merge(statements.complete_ended(table, targets.period_type), values)

    @staticmethod
    def _target_values(instance_ids: Sequence[int], targets: Targets) -> dict[str, Any]:
        assert targets.window is not None
        values = {
            "ids": list(instance_ids),
            "write_start": targets.window.start,
            "write_end": targets.window.end,
            **targets.arrays,
        }
        if targets.narrow:
            assert targets.read is not None
            values |= {"read_start": targets.read.start, "read_end": targets.read.end}
        return values

    async def settled_change_watermark(self) -> int:
        """The highest sample-change id, once every transaction that could still add a lower
        one has ended.

        Ids come from an identity column, so a transaction can hold id 100 uncommitted while id
        101 is already visible; a plain max(id) would then skip 100 for good. Every writer holds
        ROW EXCLUSIVE on sample_changes until it ends, and SHARE conflicts with it: taking SHARE
        waits for those writers to finish. The lock is taken in a savepoint and released with
        it at once, so ingestion is blocked only while the in-flight writers finish.
        """
        savepoint = await self.session.begin_nested()
        try:
            await self.session.execute(text("LOCK TABLE sample_changes IN SHARE MODE"))
            watermark = await self.session.scalar(
                text("SELECT coalesce(max(id), 0) FROM sample_changes")
            )
        finally:
            # Rolling back to the savepoint releases the lock taken inside it.
            await savepoint.rollback()
        return int(watermark or 0)

    async def advance_refresh_state(
        self, period_type: PeriodType, instance_ids: Iterable[int], watermark: int
    ) -> None:
        """Record that every change up to ``watermark`` is aggregated for this period type."""
        await self.session.execute(
            text(
                """
                INSERT INTO aggregation_refresh_state
                    (instance_id, period_type, change_watermark, refreshed_at)
                SELECT i, :pt, :watermark, now()
                FROM unnest(CAST(:ids AS integer[])) AS i
                WHERE EXISTS (SELECT 1 FROM instances WHERE id = i)
                ON CONFLICT (instance_id, period_type) DO UPDATE
                SET change_watermark = greatest(aggregation_refresh_state.change_watermark,
                                                excluded.change_watermark),
                    refreshed_at = excluded.refreshed_at
                """
            ),
            {"pt": period_type.value, "watermark": watermark, "ids": sorted(set(instance_ids))},
        )

    async def record_coverage(
        self,
        period_type: PeriodType,
        instance_ids: Iterable[int],
        window: DateWindow,
        watermark: int,
        job_id: uuid.UUID | None,
    ) -> None:
        """Record that a window scope recomputed every period of this type in ``window`` (and
        the one after it) for these instances, from a snapshot holding every change up to
        ``watermark``: the changes within the window are aggregated for this type. Only for
        instances with such a change pending (a coverage row with nothing to consume would only
        wait to be deleted)."""
        await self.session.execute(
            text(
                """
                INSERT INTO aggregation_coverage
                    (instance_id, period_type, first_date, last_date, change_watermark, job_id)
                SELECT i, :pt, :start, :end, :watermark, :job_id
                FROM unnest(CAST(:ids AS integer[])) AS i
                WHERE EXISTS (
                    SELECT FROM sample_changes AS c
                    WHERE c.instance_id = i AND c.id <= :watermark
                      AND c.first_date >= :start AND c.last_date <= :end
                )
                """
            ),
            {
                "pt": period_type.value,
                "start": window.start,
                "end": window.end,
                "watermark": watermark,
                "job_id": job_id,
                "ids": sorted(set(instance_ids)),
            },
        )

    async def delete_consumed_changes(self, instance_ids: Iterable[int]) -> int:
        """Delete the changes every period type has aggregated: for each type, the change is
        below its refresh watermark or within a window job's coverage. Then the coverage rows
        that no change below their watermark is left for."""
        aggregated = " AND ".join(
            f"""(c.id <= r.{t.value} OR EXISTS (
                    SELECT FROM aggregation_coverage AS v
                    WHERE v.instance_id = c.instance_id AND v.period_type = '{t.value}'
                      AND c.id <= v.change_watermark
                      AND c.first_date >= v.first_date AND c.last_date <= v.last_date))"""
            for t in PeriodType
        )
        watermarks = ", ".join(
            f"coalesce(max(s.change_watermark) FILTER (WHERE s.period_type = '{t.value}'), 0) "
            f"AS {t.value}"
            for t in PeriodType
        )
        ids = {"ids": sorted(set(instance_ids))}
        result = await self.session.execute(
            text(
                f"""
                DELETE FROM sample_changes AS c
                USING (
                    SELECT i AS instance_id, {watermarks}
                    FROM unnest(CAST(:ids AS integer[])) AS i
                    LEFT JOIN aggregation_refresh_state AS s ON s.instance_id = i
                    GROUP BY i
                ) AS r
                WHERE c.instance_id = r.instance_id AND {aggregated}
                """
            ),
            ids,
        )
        await self.session.execute(
            text(
                """
                DELETE FROM aggregation_coverage AS v
                WHERE v.instance_id = ANY(CAST(:ids AS integer[]))
                  AND NOT EXISTS (
                      SELECT FROM sample_changes AS c
                      WHERE c.instance_id = v.instance_id AND c.id <= v.change_watermark
                  )
                """
            ),
            ids,
        )
        return int(getattr(result, "rowcount", 0) or 0)
