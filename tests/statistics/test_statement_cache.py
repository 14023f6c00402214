"""The read side's statements built once per shape: kept, and bounded (a page's size is in its
shape, so a client choosing sizes must not grow the cache without end)."""

from collections import OrderedDict

import pytest
from sqlalchemy import literal_column, select

from dbsize.statistics import bound


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
