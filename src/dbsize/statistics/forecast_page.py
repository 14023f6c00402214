"""The forecast's page: its query, its rows' statuses and projections (from the fits SQL
ranked, ``statistics.fleet``), and its cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from dbsize.errors import InvalidInput
from dbsize.pagination import decode_cursor
from dbsize.statistics.fleet import ForecastAfter
from dbsize.statistics.forecast import Fit, ForecastStatus, Projection, classify
from dbsize.statistics.schemas import ForecastRow, StatisticsLevel


@dataclass(frozen=True)
class ForecastQuery:
    level: StatisticsLevel
    threshold_mb: Decimal | None
    horizon_days: int
    window_days: int
    instance_ids: tuple[int, ...]
    db_type: str | None
    environment: str | None
    statuses: tuple[ForecastStatus, ...]
    instance_name_contains: str | None = None
    database_name_contains: str | None = None


def forecast_row(
    row: dict[str, Any], today: date, horizon_days: int, stale_before: date
) -> ForecastRow:
    """A ranked row of the fleet's fits as the forecast's row: its status and projection."""
    threshold = row["threshold_mb"]
    projection = classify(
        _fit(row),
        threshold=float(threshold) if threshold is not None else None,
        today=today,
        horizon_days=horizon_days,
        last_sample_date=row["last_sample_date"],
        stale_before=stale_before,
    )
    return _row(row, projection)


def _row(row: dict[str, Any], projection: Projection) -> ForecastRow:
    threshold = row["threshold_mb"]
    return ForecastRow(
        instance_id=row["instance_id"],
        instance_name=row["instance_name"],
        database_name=row["database_name"] or None,
        status=projection.status,
        threshold_mb=threshold,
        last_value_mb=row["last_value"],
        last_sample_date=row["last_sample_date"],
        points=row["points"],
        slope_mb_per_day=row["slope"],
        r2=row["r2"],
        days_until_threshold=projection.days_until_threshold,
        projected_date=projection.projected_date,
        earliest_date=projection.earliest_date,
    )


def _fit(row: dict[str, Any]) -> Fit:
    last_value = row["last_value"]
    return Fit(
        points=row["points"],
        slope=row["slope"],
        intercept=row["intercept"],
        r2=row["r2"],
        mean_x=row["mean_x"],
        sxx=row["sxx"],
        residual_ss=row["residual_ss"],
        last_x=row["last_x"],
        last_value=float(last_value) if last_value is not None else None,
    )


def forecast_after(cursor: str) -> ForecastAfter:
    rank, days, instance_id, name = decode_cursor(cursor, 4)
    try:
        return ForecastAfter(
            int(rank), None if days is None else float(days), int(instance_id), str(name or "")
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput("cursor is not a value this API returned") from exc
