"""Every query of the aggregation engine. Services call these; nothing here commits.

The writes of a period type are planned by ``aggregation.writes`` (pure); :meth:`execute` runs
one planned write, with no choice of its own but "look whether the range is empty" for a
window scope's chunk."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize import periods
from dbsize.aggregation import rebuild, sql
from dbsize.aggregation.schemas import DateWindow, Level, PeriodType
from dbsize.aggregation.writes import Targets, Write, WriteKind
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
#   (writes.worth_jit), where JIT pays;
# - enable_mergejoin off: hashing a few thousand rows (incremental) is cheaper than sorting them
#   for a merge join, and so is hashing a month of samples to find each one's previous day
#   (daily window: 6.6-7.1 s per month of the fleet against 8.3 s with the merge join the
#   planner chose).
# - maintenance_work_mem: the index builds of a rebuilt daily partition (aggregation.rebuild)
#   sort the loaded rows once per index.
# Parallel workers are not set: PostgreSQL never runs a data-modifying statement in parallel.
STATEMENT_SETTINGS: dict[str, str] = {
    "jit": "on",
    "maintenance_work_mem": "256MB",
    "work_mem": "256MB",
    "plan_cache_mode": "force_custom_plan",
    "enable_nestloop": "off",
    "enable_mergejoin": "off",
}
INCREMENTAL_SETTINGS: dict[str, str] = {**STATEMENT_SETTINGS, "jit": "off"}

# The version bump with the bound on complete rows (``bump_statistics_version``).
_BUMP_VERSION = """
    INSERT INTO statistics_versions AS v
        (period_type, version, changed_at, complete_below, complete_version)
    VALUES (:period_type, 1, now(), :complete_below, 1)
    ON CONFLICT (period_type) DO UPDATE SET
        version = v.version + 1,
        changed_at = now(),
        complete_below = greatest(
            CASE WHEN v.complete_version = v.version THEN v.complete_below
                 ELSE greatest(
                     (SELECT max(d.period_start) FROM database_size_aggregations AS d
                      WHERE d.period_type = v.period_type AND d.is_complete),
                     (SELECT max(i.period_start) FROM instance_size_aggregations AS i
                      WHERE i.period_type = v.period_type AND i.is_complete)
                 ) + 1
            END,
            EXCLUDED.complete_below
        ),
        complete_version = v.version + 1
"""

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


@dataclass(frozen=True)
class WriteContext:
    """What every write of one period call binds besides its own parameters."""

    instance_ids: tuple[int, ...]
    """The requested instances."""
    today: date
    job_id: uuid.UUID | None
    trend_threshold_percent: float
    targets: Targets | None = None
    """The incremental scope's targets (their arrays and read window)."""


class AggregationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._jit = False
        self._loading = False
        """Daily database rows go into the rebuild's bare table (``aggregation.rebuild``)."""

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

    async def bump_statistics_version(self, period_type: PeriodType, today: date) -> None:
        """One more version of ``period_type``'s statistics, in the transaction of the rows
        that make it (migration 0019): what the read side's ETags derive from. With it, the
        bound on complete rows (migration 0020): a row this transaction wrote complete ended
        before ``today``, so it starts before the period containing ``today``. The bound only
        rises (``greatest``), so rows completed by an earlier job with a later today (another
        time zone) stay under it. If a writer of the previous code bumped the version since
        the bound was kept (``complete_version`` behind), rows it completed may lie above the
        bound: it is recomputed from the rows first (as the migration seeded it)."""
        await self.session.execute(
            text(_BUMP_VERSION),
            {
                "period_type": period_type.value,
                "complete_below": periods.period_start(period_type, today),
            },
        )

    async def use_jit(self, enabled: bool) -> None:
        """Local to the transaction, like the other settings (restored with them)."""
        await self._set({"jit": "on" if enabled else "off"})

    async def _set(self, settings: dict[str, str]) -> None:
        await set_local(self.session, settings)
        if "jit" in settings:
            self._jit = settings["jit"] == "on"

    # -- planned writes ------------------------------------------------------------------------

    async def execute(self, write: Write, context: WriteContext) -> int:
        """Run one planned write (``aggregation.writes``); returns the rows it wrote."""
        if write.jit != self._jit:
            await self.use_jit(write.jit)
        if write.kind is WriteKind.rebuild_begin:
            self._loading = await rebuild.begin(self.session)
            return 0
        if write.kind is WriteKind.rebuild_finish:
            if self._loading:
                await rebuild.finish(self.session)
                self._loading = False
            return 0
        database = write.level is Level.database
        table = "database_size_aggregations" if database else "instance_size_aggregations"
        if write.kind in (WriteKind.window, WriteKind.opening):
            return await self._read_window(write, context, table)
        values = self._target_values(context)
        if write.kind is WriteKind.complete_ended:
            return await self._merge(sql.complete_ended(table, write.period_type), values)
        if write.kind is WriteKind.appends:
            appends = sql.database_appends if database else sql.instance_appends
            same_day = write.read is not None
            if write.read is not None and write.instance_ids is not None:
                values |= {
                    "ids": list(write.instance_ids),
                    "read_start": write.read.start,
                    "read_end": write.read.end,
                }
            return await self._merge(appends(write.period_type, same_day=same_day), values)
        if write.into_empty is None:
            raise ValueError("a targets write says whether its range is empty")
        general = sql.database_targets if database else sql.instance_targets
        return await self._merge(
            general(write.period_type, **write.shape, into_empty=write.into_empty), values
        )

    async def _read_window(self, write: Write, context: WriteContext, table: str) -> int:
        """A window or opening write: the samples of ``write.read`` of its instances."""
        if write.instance_ids is None or write.read is None or write.write_start is None:
            raise ValueError(f"a {write.kind} write needs its instances, read and write start")
        values = {
            "ids": list(write.instance_ids),
            "read_start": write.read.start,
            "read_end": write.read.end,
            "write_start": write.write_start,
            "write_end": write.read.end,
            "today": context.today,
            "job_id": context.job_id,
            "threshold": Decimal(str(context.trend_threshold_percent)),
        }
        if write.kind is WriteKind.opening:
            opening = (
                sql.database_opening
                if table == "database_size_aggregations"
                else sql.instance_opening
            )
            return await self._merge(opening(write.period_type), values)
        if self._loading and table == "database_size_aggregations":
            # In key order without a sort (sql.database_daily_rebuild): the planner would sort
            # the window's samples, as cheap to it as the primary key's order and 0.5-0.75 s
            # a month of 20,000 databases dearer.
            loading = sql.database_window(write.period_type, table=rebuild.LOADING)
            previous = await self.apply_settings({"enable_sort": "off"})
            written = await self._merge(loading, values)
            await self.restore_settings(previous)
            return written
        empty = write.into_empty
        if empty is None:
            empty = await self._range_is_empty(
                table, write.period_type, write.instance_ids, write.write_start, write.read.end
            )
        window = (
            sql.database_window if table == "database_size_aggregations" else sql.instance_window
        )
        return await self._merge(window(write.period_type, into_empty=empty), values)

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
        named = ""
        if table == "database_size_aggregations":  # its key leads with the period
            named = f"AND period_start = ANY({sql.named_starts(period_type, ':start', ':end')})"
        found = await self.session.scalar(
            text(
                f"SELECT EXISTS (SELECT FROM {table} WHERE instance_id = ANY(:ids) "
                f"AND period_type = :pt AND period_start BETWEEN :start AND :end {named})"
            ),
            {"ids": list(instance_ids), "pt": period_type.value, "start": start, "end": end},
        )
        return not found

    async def analyze_if_never_analyzed(self, period_type: PeriodType) -> bool:
        """ANALYZE the period type's instance partition if it has no statistics yet (a fleet's
        first backfill). Without them the planner took the (period_type, period_start) index
        for lookups by (instance, period) and filtered the instance, reading every instance's
        row of the period per lookup: at 5,000 instances the covered-instances probe took
        0.96-1.42 s instead of 10 ms, and a night's first-of-month instance statement 6.8 s
        instead of 0.14 s, until autovacuum got to the partition. Returns whether it ran."""
        table = f"instance_size_aggregations_{period_type.value}"
        never = await self.session.scalar(
            text("SELECT reltuples < 0 FROM pg_class WHERE oid = CAST(:t AS regclass)"),
            {"t": table},
        )
        if never:
            await self.session.execute(text(f"ANALYZE {table}"))
        return bool(never)

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
        compiled = compile_statement(sql.incremental_targets(period_type))
        row = await (await self._driver()).fetchrow(
            compiled.sql,
            *compiled.args({"ids": list(instance_ids), "watermark": watermark, "today": today}),
        )
        if not row[0]:
            return Targets(period_type, count=0, window=None, arrays={})
        arrays = dict(zip(sql.TARGET_ARRAYS, row[3:-5], strict=True))
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

    @staticmethod
    def _target_values(context: WriteContext) -> dict[str, Any]:
        targets = context.targets
        if targets is None or targets.window is None:
            raise ValueError("a targets write needs the targets")
        values = {
            "ids": list(context.instance_ids),
            "write_start": targets.window.start,
            "write_end": targets.window.end,
            "today": context.today,
            "job_id": context.job_id,
            "threshold": Decimal(str(context.trend_threshold_percent)),
            **targets.arrays,
        }
        if targets.narrow and targets.read is not None:
            values |= {"read_start": targets.read.start, "read_end": targets.read.end}
        return values
