"""The read side's statements built once per shape: kept, and bounded (a page's size is in its
shape, so a client choosing sizes must not grow the cache without end)."""

from collections import OrderedDict

import pytest
from sqlalchemy import literal_column, select
from sqlalchemy.dialects import postgresql

from dbsize.aggregation.models import DatabaseSizeAggregation
from dbsize.aggregation.schemas import PeriodType
from dbsize.statistics import bound
from dbsize.statistics.filters import StatisticsFilter
from dbsize.statistics.latest import kept_first_page
from dbsize.statistics.schemas import GrowthMeasure, SortField, SortOrder, StatisticsLevel
from dbsize.statistics.top import _top_statement


@pytest.fixture
def small_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bound, "_STATEMENTS", OrderedDict())
    monkeypatch.setattr(bound, "_MAX_STATEMENTS", 3)


def _built(size: int) -> object:
    return bound.statement(("page", size), lambda: select(literal_column(str(size))))


@pytest.mark.usefixtures("small_cache")
def test_a_shape_is_built_once() -> None:
    assert _built(1) is _built(1)


@pytest.mark.usefixtures("small_cache")
def test_the_least_recently_used_shape_is_dropped_beyond_the_bound() -> None:
    first, second = _built(1), _built(2)
    _built(3)
    assert _built(1) is first  # used again: now the newest
    _built(4)  # a fourth shape drops the least recently used, 2
    assert list(bound._STATEMENTS) == [("page", 3), ("page", 1), ("page", 4)]
    assert _built(2) is not second


@pytest.mark.parametrize("limit", [3, 501])
def test_a_page_statement_binds_no_size(limit: int) -> None:
    """The page size is written in the statement (``rendered.page_literal``): bound, PostgreSQL
    planned the statement at every execution instead of keeping one plan."""
    query, params = kept_first_page(
        StatisticsLevel.database,
        StatisticsFilter(period_type=PeriodType.monthly, latest=True),
        sort=SortField.size_change_mb,
        order=SortOrder.desc,
        version="v1",
        limit=limit,
    )
    compiled = query.compile(dialect=postgresql.dialect())  # type: ignore[attr-defined,no-untyped-call]
    sql = str(compiled)
    assert f"LIMIT {limit}" in sql
    assert f"<= {limit - 1}" in sql
    assert "limit" not in params
    assert "page_size" not in params
    bound_values = set(compiled.params.values())
    assert limit not in bound_values
    assert limit - 1 not in bound_values


@pytest.mark.parametrize("ranked", [False, True])
def test_a_top_statement_binds_no_n(ranked: bool) -> None:
    """Top-N's ``n`` is written in its statement as a page's size is: bound, PostgreSQL
    planned it at every execution (0.84 ms to bind against 0.25 ms to run, in its log)."""
    query = _top_statement(
        DatabaseSizeAggregation,
        PeriodType.monthly,
        GrowthMeasure.size_change_mb,
        ranked,
        ("db_type",),
        17,
    )
    compiled = query.compile(dialect=postgresql.dialect())  # type: ignore[attr-defined,no-untyped-call]
    assert "LIMIT 17" in str(compiled)
    assert "n" not in compiled.params
    assert 17 not in set(compiled.params.values())
