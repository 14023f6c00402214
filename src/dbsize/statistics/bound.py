"""Statements of the read side built once per shape: which filters a read gives, not their
values, chooses the statement; the values are bound at each execution.

Building a select of 30 columns and its cache key cost ~0.3 ms of CPU per statement and
request (decision 0007, "Speed, fourth round"). A statement object that is reused keeps its
cache key (SQLAlchemy memoizes it), so its compiled form is found without walking it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, case, column, func, literal_column, select, table
from sqlalchemy.sql import Executable

from dbsize.aggregation.models import DatabaseSizeAggregation, InstanceSizeAggregation
from dbsize.aggregation.schemas import PeriodType
from dbsize.instances.models import Instance
from dbsize.periods import period_start, today_in
from dbsize.statistics.named_periods import named_periods
from dbsize.statistics.rendered import json_arrays, rendered
from dbsize.statistics.schemas import DatabaseStatistics, InstanceStatistics

if TYPE_CHECKING:
    from dbsize.statistics.filters import StatisticsFilter

DB = DatabaseSizeAggregation
INST = InstanceSizeAggregation

# Statements built once per shape, the least recently used dropped beyond _MAX_STATEMENTS: a
# page's size is in its shape (``rendered.page_literal``), so the shapes a client can ask for
# are many, though few are ever used.
_STATEMENTS: OrderedDict[tuple[Any, ...], Executable] = OrderedDict()
_MAX_STATEMENTS = 1024

# The filters (by their names in :func:`filter_values`) that are conditions on ``instances``.
INSTANCE_FILTERS = frozenset({"db_type", "environment", "instance_name_pattern"})


def statement(shape: tuple[Any, ...], build: Callable[[], Executable]) -> Executable:
    built = _STATEMENTS.get(shape)
    if built is None:
        built = _STATEMENTS[shape] = build()
        if len(_STATEMENTS) > _MAX_STATEMENTS:
            _STATEMENTS.popitem(last=False)
    else:
        _STATEMENTS.move_to_end(shape)
    return built


def period_type_is(column: Any, period_type: str) -> ColumnElement[bool]:
    """``column = 'daily'`` written in the statement, not bound: a statement built once per
    shape has the period type in its shape, so that PostgreSQL prunes the aggregation tables'
    partitions when it plans, and its plan for the rest of the values (an instance, a database
    name) can be the prepared statement's generic one. Bound, every execution was planned
    anew (~0.3 ms each: a generic plan over all four partitions cost more to the planner than
    a custom one over the pruned partition; decision 0007, "sixth round")."""
    condition: ColumnElement[bool] = column == literal_column(f"'{PeriodType(period_type).value}'")
    return condition


def like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


def filter_values(model: type[DB] | type[INST], flt: StatisticsFilter) -> dict[str, Any]:
    """The filter's values by the name :func:`bound_conditions` binds them under; which names
    are present is the statement's shape."""
    values: dict[str, Any] = {"period_type": flt.period_type.value}
    if flt.instance_ids:
        values["instance_ids"] = list(flt.instance_ids)
    if flt.db_type is not None:
        values["db_type"] = flt.db_type
    if flt.environment is not None:
        values["environment"] = flt.environment
    if flt.instance_name_contains:
        values["instance_name_pattern"] = "%" + like_escaped(flt.instance_name_contains) + "%"
    if model is DB:
        if flt.database_name is not None:
            values["database_name"] = flt.database_name
        if flt.database_name_prefix:
            values["database_name_prefix"] = like_escaped(flt.database_name_prefix) + "%"
        if flt.database_name_contains:
            pattern = "%" + like_escaped(flt.database_name_contains) + "%"
            values["database_name_contains"] = pattern
    return values | _period_values(flt)


def _period_values(flt: StatisticsFilter) -> dict[str, Any]:
    """The filter's values on a row's period (:func:`filter_values`)."""
    values: dict[str, Any] = {}
    if flt.start is not None:
        values["start"] = flt.start
    if flt.end is not None:
        values["end"] = flt.end
    if flt.complete is not None:
        values["complete"] = flt.complete
    if flt.complete:
        values["complete_before"] = complete_before(flt.period_type)
    return values


# The latest local date anywhere (UTC+14): no job's "today" can be later than this, read an
# hour ahead so that a worker whose clock runs up to an hour ahead of the API's is covered too.
_LATEST_ZONE = ZoneInfo("Etc/GMT-14")
_CLOCK_SKEW = timedelta(hours=1)


def complete_before(period_type: PeriodType, now: datetime | None = None) -> date:
    """A bound every complete row is under: ``period_start < complete_before``. A row is
    complete when its period ended before its job's today (``period_end < today``), and no
    zone's today is later than UTC+14's, so a complete row's period starts before the period
    containing that date. ``complete=true`` adds it to the period filter so that the index on
    ``period_start`` starts below the newest periods, which are incomplete for every key
    (the current week's 20,000 rows were walked and dropped one by one: decision 0007,
    "sixth round"). It never drops a row: it is implied by ``is_complete``."""
    instant = (now if now is not None else datetime.now(UTC)) + _CLOCK_SKEW
    return period_start(period_type, today_in(_LATEST_ZONE, instant))


# Each period type's bound on its complete rows, kept by the writers (migration 0020).
_VERSIONS = table(
    "statistics_versions",
    column("period_type"),
    column("version"),
    column("complete_below"),
    column("complete_version"),
)


def below_complete_bound(
    model: type[DB] | type[INST], period_type: str, clock_bound: Any
) -> ColumnElement[bool]:
    """``period_start`` under both bounds on complete rows: ``clock_bound``
    (:func:`complete_before`, what no job's today can pass) and ``complete_below``, which
    every period transaction that writes rows raises to the start of the period containing
    its today (``AggregationRepository.bump_statistics_version``). The clock's bound alone
    let the index scan start inside the newest period from the day that period ends in
    UTC+14 until the next job runs: a weekly ``complete=true`` list walked the current week's
    20,000 incomplete rows every Sunday (decision 0007, "Speed, ninth round"). Read in the
    statement (one snapshot with the rows it bounds); ``least`` ignores a missing bound, and
    one kept at an older version than the current (migration 0020)."""
    v = _VERSIONS.c
    # Kept at the current version, or not at all: a writer of the previous code bumps the
    # version without raising the bound (migration 0020).
    kept_bound = case((v.complete_version == v.version, v.complete_below))
    kept = select(kept_bound).where(period_type_is(v.period_type, period_type)).scalar_subquery()
    condition: ColumnElement[bool] = model.period_start < func.least(kept, clock_bound)
    return condition


def bound_conditions(
    model: type[DB] | type[INST], names: Sequence[str], period_type: str
) -> list[ColumnElement[bool]]:
    """:func:`filters.conditions` with each value a named parameter (the names of
    :func:`filter_values`) but the period type (:func:`period_type_is`), for a statement
    built once per shape and period type."""
    conditions: dict[str, ColumnElement[bool]] = {
        "period_type": period_type_is(model.period_type, period_type),
        "start": model.period_start >= bindparam("start"),
        "end": model.period_start <= bindparam("end"),
        "complete": model.is_complete == bindparam("complete"),
        "complete_before": below_complete_bound(model, period_type, bindparam("complete_before")),
    }
    names_column = DB.database_name if model is DB else None
    keys = [name for name in names if name not in conditions]
    return [conditions[name] for name in names if name in conditions] + bound_key_conditions(
        model.instance_id, names_column, keys
    )


def bound_key_conditions(
    instance_id: Any, database_name: Any, names: Sequence[str]
) -> list[ColumnElement[bool]]:
    """:func:`filters.key_conditions` with each value a named parameter: on a row's key
    (``instance_id``, ``database_name``) and its instance (``instances``, joined)."""
    conditions: dict[str, Callable[[], ColumnElement[bool]]] = {
        "instance_ids": lambda: instance_id.in_(bindparam("instance_ids", expanding=True)),
        "db_type": lambda: Instance.db_type == bindparam("db_type"),
        "environment": lambda: Instance.environment == bindparam("environment"),
        "instance_name_pattern": lambda: Instance.name.ilike(
            bindparam("instance_name_pattern"), escape="\\"
        ),
        "database_name": lambda: database_name == bindparam("database_name"),
        "database_name_prefix": lambda: database_name.like(
            bindparam("database_name_prefix"), escape="\\"
        ),
        "database_name_contains": lambda: database_name.ilike(
            bindparam("database_name_contains"), escape="\\"
        ),
    }
    return [conditions[name]() for name in names]


def series(
    model: type[DB] | type[INST],
    period_type: PeriodType,
    *,
    start: bool,
    end: bool,
    database_name: bool,
) -> Executable:
    """One instance's rows of a period type (``:instance_id``), with
    ``:start``/``:end`` and (databases) ``:database_name`` when asked, as one JSON array text
    oldest first (``rows``; databases: one per database, by name, with ``database_name``
    beside it)."""

    def build() -> Executable:
        conditions = [
            period_type_is(model.period_type, period_type.value),
            model.instance_id == bindparam("instance_id"),
        ]
        if start:
            conditions.append(model.period_start >= bindparam("start"))
        if end:
            conditions.append(model.period_start <= bindparam("end"))
        if database_name:
            conditions.append(DB.database_name == bindparam("database_name"))
        if model is DB:
            conditions.append(
                named_periods(
                    period_type,
                    bindparam("start") if start else None,
                    bindparam("end") if end else None,
                )
            )
        rows = (
            select(*model.__table__.columns, Instance.name.label("instance_name"))
            .join(Instance, Instance.id == model.instance_id)
            .where(*conditions)
        )
        if model is INST:
            page = rendered(rows, InstanceStatistics, keep=("period_start",), order_by=lambda c: [])
            return json_arrays(page, order=("period_start",))
        page = rendered(
            rows,
            DatabaseStatistics,
            keep=("database_name", "period_start"),
            order_by=lambda c: [],
        )
        return json_arrays(page, order=("period_start",), group="database_name")

    shape = ("series", model.__tablename__, period_type, start, end, database_name)
    return statement(shape, build)


def window_params(instance_id: int, start: date | None, end: date | None) -> dict[str, Any]:
    params: dict[str, Any] = {"instance_id": instance_id}
    if start is not None:
        params["start"] = start
    if end is not None:
        params["end"] = end
    return params
