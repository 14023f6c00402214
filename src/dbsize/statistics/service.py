"""Read-side rules: 404 for an unknown instance, cursors, the forecast's statuses and ranking,
and the version each ETag derives from. Queries live in the repositories; HTTP in endpoints."""

from __future__ import annotations

import hashlib
import math
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.aggregation.schemas import PeriodType
from dbsize.errors import InvalidInput, NotFound
from dbsize.instances.service import InstanceService
from dbsize.pagination import decode_cursor, encode_cursor
from dbsize.periods import previous_period_start
from dbsize.statistics.capacities import CapacityRepository
from dbsize.statistics.filters import Keyset, StatisticsFilter, kept_latest_applies
from dbsize.statistics.fleet import FleetRepository, ForecastScope
from dbsize.statistics.forecast import ForecastStatus
from dbsize.statistics.forecast_page import ForecastQuery, forecast_after, forecast_row
from dbsize.statistics.latest import keep_latest
from dbsize.statistics.rendered import RawJson, json_array, json_object
from dbsize.statistics.repository import StatisticsRepository
from dbsize.statistics.schemas import (
    DatabaseCapacity,
    Forecast,
    Freshness,
    GrowthMeasure,
    InstanceTotals,
    LastJob,
    PendingChanges,
    PeriodFreshness,
    SeriesInclude,
    SortField,
    SortOrder,
    StaleInstance,
    StatisticsLevel,
    TopGrower,
    TopGrowers,
)
from dbsize.statistics.top import TopRepository

# The forecast reads the daily window and the quarterly rows (every key ever seen).
FORECAST_PERIOD_TYPES = (PeriodType.daily, PeriodType.quarterly)


def version_tag(*parts: Any) -> str:
    """A weak ETag from the (small) values a response depends on."""
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:24]
    return f'W/"{digest}"'


def _sort_value(sort: SortField, raw: Any) -> Any:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw) if sort is SortField.period_start else Decimal(raw)
    except (TypeError, ValueError, InvalidOperation) as exc:
        raise InvalidInput("cursor is not a value this API returned") from exc


def _keyset(cursor: str, level: StatisticsLevel, sort: SortField) -> Keyset:
    if level is StatisticsLevel.database:
        value, instance_id, name, start = decode_cursor(cursor, 4)
        key: tuple[Any, ...] = (instance_id, name, start)
    else:
        value, instance_id, start = decode_cursor(cursor, 3)
        key = (instance_id, start)
    try:
        key = (int(key[0]), *key[1:-1], date.fromisoformat(key[-1]))
    except (TypeError, ValueError) as exc:
        raise InvalidInput("cursor is not a value this API returned") from exc
    return Keyset(_sort_value(sort, value), key)


def _cursor_of(row: dict[str, Any], level: StatisticsLevel, sort: SortField) -> str:
    value = row[sort.value]
    if level is StatisticsLevel.database:
        return encode_cursor(value, row["instance_id"], row["database_name"], row["period_start"])
    return encode_cursor(value, row["instance_id"], row["period_start"])


class StatisticsService:
    def __init__(self, session: AsyncSession, *, today: date, stale_after_days: int) -> None:
        self.session = session
        self.repository = StatisticsRepository(session)
        self.top_growers = TopRepository(session)
        self.fleet = FleetRepository(session)
        self.capacities = CapacityRepository(session)
        self.today = today
        self.stale_after_days = stale_after_days
        # The statistics' versions read for this request's ETag, by period types: the
        # forecast's kept fits are keyed on the same version.
        self.statistics_versions: dict[tuple[PeriodType, ...], tuple[Any, ...]] = {}
        # The instances' and capacities' versions read for a forecast's ETag: its kept
        # ranking is keyed on them too.
        self.forecast_others: tuple[Any, ...] | None = None
        self.instance_names: dict[int, str] = {}

    async def require_instance(self, instance_id: int) -> str:
        """The instance's name (read once per request), or 404."""
        name = self.instance_names.get(instance_id)
        if name is None:
            name = await self.repository.instance_name(instance_id)
            if name is None:
                raise NotFound(f"instance {instance_id} does not exist")
            self.instance_names[instance_id] = name
        return name

    async def etag(
        self,
        request_key: str,
        period_types: tuple[PeriodType, ...],
        *,
        forecast: bool = False,
        instance_id: int | None = None,
    ) -> str:
        """The ETag of a read of ``period_types``. With ``instance_id`` (a series), the
        instance is checked in the same round trip (404 if it does not exist) and its name
        kept for the body."""
        statistics, others, name = await self.repository.versions(
            period_types, capacities=forecast, instance_id=instance_id
        )
        if instance_id is not None:
            if name is None:
                raise NotFound(f"instance {instance_id} does not exist")
            self.instance_names[instance_id] = name
        self.statistics_versions[period_types] = statistics
        if forecast:
            self.forecast_others = others
        extra = (self.today,) if forecast else ()
        return version_tag(request_key, statistics, others, *extra)

    async def _forecast_others(self) -> tuple[Any, ...]:
        """The instances' and capacities' versions (read once per request: the ETag's)."""
        if self.forecast_others is None:
            _, self.forecast_others, _ = await self.repository.versions(
                FORECAST_PERIOD_TYPES, capacities=True
            )
        return self.forecast_others

    async def _statistics(self, *period_types: PeriodType) -> tuple[Any, ...]:
        """The statistics' version of these period types (read once per request: the ETag's)."""
        if period_types not in self.statistics_versions:
            data, _, _ = await self.repository.versions(period_types)
            self.statistics_versions[period_types] = data
        return self.statistics_versions[period_types]

    async def list_page(
        self,
        level: StatisticsLevel,
        flt: StatisticsFilter,
        *,
        sort: SortField,
        order: SortOrder,
        cursor: str | None,
        limit: int,
    ) -> RawJson:
        """A ``Page`` of ``DatabaseStatistics`` or ``InstanceStatistics``, as JSON."""
        if level is StatisticsLevel.instance and (
            flt.database_name or flt.database_name_prefix or flt.database_name_contains
        ):
            raise InvalidInput("database_name filters apply to database statistics only")
        if level is StatisticsLevel.instance and sort is SortField.growth_mb_per_day:
            raise InvalidInput("instance statistics have no growth_mb_per_day; sort by another")
        after = _keyset(cursor, level, sort) if cursor else None
        kept = None
        if kept_latest_applies(flt):
            data = await self._statistics(flt.period_type)
            kept = version_tag("latest", level, flt.period_type, data)
            await keep_latest(self.session, level, flt.period_type, kept)
        page = await self.repository.list_rows(
            level, flt, sort=sort, order=order, after=after, limit=limit + 1, kept_version=kept
        )
        next_cursor = _cursor_of(page, level, sort) if page["fetched"] > limit else None
        # Page's fields in its order; the rows are JSON PostgreSQL wrote (statistics.rendered).
        return json_object(
            {
                "items": RawJson("[" + (page["rows"] or "") + "]"),
                "next_cursor": next_cursor,
                "limit": limit,
            }
        )

    async def instance_totals(self, flt: StatisticsFilter) -> InstanceTotals:
        row = await self.repository.instance_totals(flt)
        return InstanceTotals.model_validate({"period_type": flt.period_type, **row})

    async def instance_series(
        self,
        instance_id: int,
        period_type: PeriodType,
        start: date | None,
        end: date | None,
        *,
        include: SeriesInclude | None = None,
    ) -> RawJson:
        """An ``InstanceSeries``, as JSON (its rows PostgreSQL wrote: statistics.rendered)."""
        name = await self.require_instance(instance_id)
        rows = await self.repository.instance_series(instance_id, period_type, start, end)
        databases: RawJson | None = None
        sizes: RawJson | None = None
        if include is SeriesInclude.databases:
            groups = await self.repository.database_series(instance_id, period_type, start, end)
            databases = json_array(
                json_object({"database_name": database, "series": RawJson(rows)})
                for database, rows in groups
            )
        elif include is SeriesInclude.database_sizes:
            columns = await self.repository.database_sizes(instance_id, period_type, start, end)
            newest = await self.repository.newest_database_rows(
                instance_id, period_type, start, end
            )
            latest = {row["database_name"]: RawJson(row["row"]) for row in newest}
            # DatabaseSizes' fields in order; the arrays and rows are JSON PostgreSQL wrote.
            sizes = json_array(
                json_object(
                    {
                        "database_name": c["database_name"],
                        "period_start": RawJson(c["period_start"]),
                        "avg_size_mb": RawJson(c["avg_size_mb"]),
                        "latest": latest[c["database_name"]],
                    }
                )
                for c in columns
            )
        return json_object(
            {
                "instance_id": instance_id,
                "instance_name": name,
                "period_type": period_type,
                "series": RawJson(rows),
                "databases": databases,
                "database_sizes": sizes,
            }
        )

    async def database_series(
        self,
        instance_id: int,
        database_name: str,
        period_type: PeriodType,
        start: date | None,
        end: date | None,
    ) -> RawJson:
        """A ``DatabaseStatisticsSeries``, as JSON (statistics.rendered)."""
        name = await self.require_instance(instance_id)
        groups = await self.repository.database_series(
            instance_id, period_type, start, end, database_name
        )
        if not groups and not await self.repository.database_known(instance_id, database_name):
            raise NotFound(
                f"instance {instance_id} has no statistics of database {database_name!r}"
            )
        return json_object(
            {
                "instance_id": instance_id,
                "instance_name": name,
                "database_name": database_name,
                "period_type": period_type,
                "series": RawJson(groups[0][1] if groups else "[]"),
            }
        )

    async def top(
        self, level: StatisticsLevel, flt: StatisticsFilter, *, by: GrowthMeasure, n: int
    ) -> TopGrowers:
        if level is StatisticsLevel.instance and by is GrowthMeasure.growth_mb_per_day:
            raise InvalidInput("instance statistics have no growth_mb_per_day; use size_change_mb")
        if level is StatisticsLevel.instance and flt.database_name_contains:
            raise InvalidInput("database_name_contains applies to the database level only")
        complete = flt.complete is True
        newest = await self.top_growers.newest_period(flt.period_type, complete=complete)
        items: list[TopGrower] = []
        if newest is not None:
            ranks = None
            # The database level walks kept ranks (20,000 rows a period); chosen instances
            # are few rows, read directly (walking the ranks could pass most of them).
            if level is StatisticsLevel.database and not flt.instance_ids:
                data = await self._statistics(flt.period_type)
                ranks = version_tag("top", flt.period_type, newest, complete, by, data)
                await self.top_growers.keep_ranks(flt, period_start=newest, by=by, version=ranks)
            rows = await self.top_growers.top(
                level,
                flt,
                period_start=newest,
                previous_start=previous_period_start(flt.period_type, newest),
                by=by,
                n=n,
                ranks_version=ranks,
            )
            items = [
                TopGrower.model_validate({"database_name": None, "growth_mb_per_day": None, **row})
                for row in rows
            ]
        return TopGrowers(
            period_type=flt.period_type, level=level, by=by, period_start=newest, items=items
        )

    async def forecast(self, query: ForecastQuery, *, cursor: str | None, limit: int) -> Forecast:
        """Rank in SQL, build models for the page only. The fleet's fits are kept under a version
        of the data they come from (computed again after it changes); a forecast of chosen
        instances fits them directly."""
        if query.level is StatisticsLevel.instance and query.database_name_contains:
            raise InvalidInput("database_name_contains applies to the database level only")
        scope = ForecastScope(
            level=query.level,
            today=self.today,
            window_days=query.window_days,
            threshold_mb=query.threshold_mb,
            horizon_days=query.horizon_days,
            stale_before=self.today - timedelta(days=self.stale_after_days),
            instance_ids=query.instance_ids,
            db_type=query.db_type,
            environment=query.environment,
            instance_name_contains=query.instance_name_contains,
            database_name_contains=query.database_name_contains,
            statuses=tuple(s.value for s in query.statuses),
        )
        fits_version = ranks_version = None
        if not query.instance_ids:
            data = await self._statistics(*FORECAST_PERIOD_TYPES)
            fits_version = version_tag("fits", query.level, query.window_days, self.today, data)
            await self.fleet.ensure_fits(
                query.level, version=fits_version, today=self.today, window_days=query.window_days
            )
            # The statuses and ranks depend on the fits, the thresholds (capacities, instances'
            # capacities and activity: the ETag's other versions), threshold, horizon and day.
            ranks_version = version_tag(
                "ranks",
                fits_version,
                await self._forecast_others(),
                query.threshold_mb,
                query.horizon_days,
                scope.stale_before,
            )
            await self.fleet.ensure_ranks(scope, fits_version=fits_version, version=ranks_version)
        after = forecast_after(cursor) if cursor else None
        counts, rows = await self.fleet.forecast_page(
            scope,
            fits_version=fits_version,
            after=after,
            limit=limit + 1,
            ranks_version=ranks_version,
        )
        page = [
            forecast_row(row, self.today, query.horizon_days, scope.stale_before) for row in rows
        ]
        next_cursor = None
        if len(page) > limit:
            page = page[:limit]
            last = rows[limit - 1]
            days = last["days_key"]
            next_cursor = encode_cursor(
                last["rank"], None if math.isinf(days) else days, last["instance_id"],
                last["database_name"],
            )  # fmt: skip
        return Forecast(
            level=query.level,
            today=self.today,
            window_days=query.window_days,
            horizon_days=query.horizon_days,
            counts={status: counts.get(status.value, 0) for status in ForecastStatus},
            items=page,
            next_cursor=next_cursor,
            limit=limit,
        )

    async def put_capacity(
        self, instance_id: int, database_name: str, capacity_mb: Decimal
    ) -> DatabaseCapacity:
        await InstanceService(self.session).get(instance_id)
        row = await self.capacities.put_capacity(instance_id, database_name, capacity_mb)
        return DatabaseCapacity.model_validate(row)

    async def delete_capacity(self, instance_id: int, database_name: str) -> None:
        await InstanceService(self.session).get(instance_id)
        if not await self.capacities.delete_capacity(instance_id, database_name):
            raise NotFound(f"database {database_name!r} of instance {instance_id} has no capacity")

    async def freshness(self) -> Freshness:
        stale_before = self.today - timedelta(days=self.stale_after_days)
        periods = await self.fleet.period_freshness()
        return Freshness(
            today=self.today,
            stale_after_days=self.stale_after_days,
            periods=[PeriodFreshness.model_validate(p) for p in periods],
            last_succeeded_jobs=[
                LastJob.model_validate(j) for j in await self.fleet.last_succeeded_jobs()
            ],
            stale_instances=[
                StaleInstance.model_validate(s)
                for s in await self.fleet.stale_instances(stale_before)
            ],
            pending_changes=PendingChanges.model_validate(await self.fleet.pending_changes()),
        )
