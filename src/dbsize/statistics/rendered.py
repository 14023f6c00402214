"""Statistics rows written as JSON by PostgreSQL, not by Python.

A list page or a series is rows of 20-30 columns, most of them ``numeric``. Decoding each value
into a ``Decimal``, each row into a dict, validating the rows and writing them out again cost the
API 2-5 ms of CPU per request (100-365 rows; decision 0007, "Speed, fifth round"), which with 8
requests in flight on one process was most of their wait. PostgreSQL writes each row as one JSON
object instead (``row_to_json``, in C; ~5 us a row) and the API joins the objects into the page.

The objects have the response models' fields in the models' order (the field list is read from
the models, so the schema and the SQL cannot drift apart); ``numeric`` values are written as
the exact stored decimal without trailing zeros (``trim_scale``), which reads back as the
double the models write (``dbsize.decimals.JsonDecimal``: ``float(Decimal)``, correctly
rounded); ``timestamptz`` in ISO 8601 with its offset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Numeric, Select, Text, cast, func, literal_column, select, true
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

    ``row_to_json`` of a row of exactly the schema's fields writes compact JSON (no spaces;
    ``json_build_object`` writes ``"key" : value``, 3 bytes more a field) with the fields'
    names as keys, in their order."""
    page = rows.subquery("rendered_rows")
    fields = (
        select(*(_value(page.c[name]).label(name) for name in schema.model_fields))
        .correlate(page)
        .lateral("rendered_row")
    )
    return (
        select(
            cast(func.row_to_json(fields.table_valued()), Text).label("row"),
            *(page.c[name] for name in keep),
        )
        .select_from(page)
        .join(fields, true())
        .order_by(*order_by(page.c))
    )


def _value(column: Any) -> Any:
    # The exact stored decimal without its trailing zeros: 6854.211, 200 (not 6854.211000),
    # which a JSON reader parses to the double the models' float would write, ~0.6 us a row
    # cheaper than a cast to float8 (decision 0007, "sixth round").
    return func.trim_scale(column) if isinstance(column.type, Numeric) else column


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
