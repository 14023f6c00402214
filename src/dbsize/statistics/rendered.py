"""Statistics rows written as JSON by PostgreSQL, not by Python.

A list page or a series is rows of 20-30 columns, most of them ``numeric``. Decoding each value
into a ``Decimal``, each row into a dict, validating the rows and writing them out again cost the
API 2-5 ms of CPU per request (100-365 rows; decision 0007, "Speed, fifth round"), which with 8
requests in flight on one process was most of their wait. PostgreSQL writes each row as one JSON
object instead (one ``concat`` per row, :func:`json_object_text`) and joins a series' objects
into its array (:func:`json_arrays`); the API joins a page's objects.

The objects have the response models' fields in the models' order (the field list is read from
the models, so the schema and the SQL cannot drift apart); ``numeric`` values are written as
the exact stored decimal without trailing zeros (``trim_scale``), which reads back as the
double the models write (``dbsize.decimals.JsonDecimal``: ``float(Decimal)``, correctly
rounded); dates and ``timestamptz`` as ``to_json`` writes them (ISO 8601, with the offset).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    Boolean,
    Float,
    Integer,
    Numeric,
    Select,
    Text,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by


def rendered(
    rows: Select[Any],
    schema: type[BaseModel],
    *,
    keep: Sequence[str],
    order_by: Callable[[Any], Iterable[Any]],
) -> Select[Any]:
    """``rows`` (a select of ``schema``'s columns) as one JSON object per row (column ``row``,
    text: the driver would parse a ``json`` value into Python objects), with the columns
    ``keep`` beside it in their own types (a cursor's values, a group's key), ordered by
    ``order_by(columns)`` (a subquery's order is not its reader's).

    Each object is written by :func:`json_object_text`: compact, the schema's fields as keys
    in their order."""
    page = rows.subquery("rendered_rows")
    return (
        select(
            json_object_text({name: page.c[name] for name in schema.model_fields}).label("row"),
            *(page.c[name] for name in keep),
        )
        .select_from(page)
        .order_by(*order_by(page.c))
    )


def json_object_text(fields: dict[str, Any]) -> Any:
    """A SQL expression of the JSON object text of ``fields`` (name -> column), in their
    order: one ``concat`` of the keys and each value's JSON text (:func:`_json_value`).

    ``row_to_json`` wrote the same text ~20 % slower (1.45M daily rows: 9.3 s against 7.4 s;
    a 365-row series ~1.5-2 ms of its ~5 ms in PostgreSQL): it looks each column's type
    category up again for every row, and needs the row formed as a tuple first. Here the
    value's output is chosen once, when the statement is built."""
    parts: list[Any] = []
    for index, (name, column) in enumerate(fields.items()):
        key = ("{" if index == 0 else ",") + json.dumps(name) + ":"
        parts += [literal_column(_sql_string(key)), _json_value(column)]
    parts.append(literal_column("'}'"))
    return func.concat(*parts)


def _json_value(column: Any) -> Any:
    """The JSON text of a column's value (``null`` for NULL): numbers and booleans in their
    own text (``numeric`` as the exact stored decimal without its trailing zeros, 6854.211 or
    200, which a JSON reader parses to the double the models' float would write); anything
    else through ``to_json`` (strings escaped, dates and timestamps in ISO 8601)."""
    if isinstance(column.type, Numeric) and not isinstance(column.type, Float):
        text = cast(func.trim_scale(column), Text)
    elif isinstance(column.type, Integer | Boolean | Float):
        text = cast(column, Text)
    else:
        text = cast(func.to_json(column), Text)
    return func.coalesce(text, literal_column("'null'"))


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def json_arrays(
    page: Select[Any], *, order: Sequence[str], group: str | None = None
) -> Select[Any]:
    """The JSON objects of a :func:`rendered` select (``page``) joined into one JSON array text
    (column ``rows``, ``[]`` for none) in the order of its kept columns ``order``; one array
    per value of the kept column ``group`` (beside it, ascending) when given. A series of 365
    rows is then one value for the driver to read and the API to copy, not 365."""
    rows = page.subquery("rendered_page")
    joined = func.string_agg(
        rows.c.row, aggregate_order_by(literal_column("','"), *(rows.c[c] for c in order))
    )
    array = func.concat(literal_column("'['"), joined, literal_column("']'")).label("rows")
    if group is None:
        return select(array)
    return select(rows.c[group], array).group_by(rows.c[group]).order_by(rows.c[group])


def one_page(
    page: Select[Any],
    *,
    keep: Sequence[str],
    order_by: Callable[[Any], Iterable[Any]],
    page_size: int,
) -> Select[Any]:
    """The rows of a :func:`rendered` select (``page``: up to a page and one more, to know
    there is a next) as one row: ``rows``, the first ``page_size`` JSON objects joined
    with commas in the page's order (``order_by(columns)``; NULL for none), ``fetched``, how
    many rows ``page`` gave, and the kept columns ``keep`` of the ``page_size``-th row (the
    next page's cursor; NULL when there is none). A 500-row page is then one row for the
    driver to decode and the API to copy, not 501 (~30 % of the API's CPU for that page)."""
    rows = page.subquery("page_rows")
    numbered = select(
        rows, func.row_number().over(order_by=list(order_by(rows.c))).label("n")
    ).subquery("numbered_rows")
    c = numbered.c
    in_page = c.n <= page_literal(page_size)
    last = c.n == page_literal(page_size)
    return select(
        func.string_agg(c.row, aggregate_order_by(literal_column("','"), c.n))
        .filter(in_page)
        .label("rows"),
        func.count().label("fetched"),
        *(func.max(c[name]).filter(last).label(name) for name in keep),
    )


def page_literal(size: int) -> Any:
    """A page's size (or a page and one: a ``LIMIT``) written in the statement, not bound.
    Bound, PostgreSQL planned the page statement anew at every execution (its generic plan,
    costed for an unknown limit, lost to the custom ones): ~0.55 ms of a 500-row page's ~4 ms
    (decision 0007, "Speed, eighth round"). The statements built once per shape have the size
    in their shape."""
    return literal_column(str(int(size)))


class RawJson(str):
    """Text that is JSON already (rows PostgreSQL wrote): :func:`json_object` writes it as is."""

    __slots__ = ()


def json_array(objects: Iterable[str]) -> RawJson:
    return RawJson("[" + ",".join(objects) + "]")


def json_object(fields: dict[str, Any]) -> RawJson:
    """A JSON object of ``fields`` in their order (a response model's): :class:`RawJson` values
    as they are, the others written by ``json`` (dates and UUIDs as their ISO text)."""
    parts = (
        json.dumps(key) + ":" + (value if isinstance(value, RawJson) else _dumps(value))
        for key, value in fields.items()
    )
    return RawJson("{" + ",".join(parts) + "}")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))
