"""Statistics rows written as JSON by PostgreSQL, not by Python.

A list page or a series is rows of 20-30 columns, most of them ``numeric``. Decoding each value
into a ``Decimal``, each row into a dict, validating the rows and writing them out again cost the
API 2-5 ms of CPU per request (100-365 rows; decision 0007, "Speed, fifth round"), which with 8
requests in flight on one process was most of their wait. PostgreSQL writes each row as one JSON
object instead (``row_to_json``, in C; ~5 us a row) and the API joins the objects into the page.

The objects have the response models' fields in the models' order (the field list is read from
the models, so the schema and the SQL cannot drift apart); ``numeric`` values are written as
``float8``, the value the models write (``dbsize.decimals.JsonDecimal``: PostgreSQL's conversion
is correctly rounded as Python's ``float(Decimal)`` is, and both print the shortest text that
reads back as the same double); ``timestamptz`` in ISO 8601 with its offset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Float, Numeric, Select, Text, cast, func, select, true


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
    return cast(column, Float(53)) if isinstance(column.type, Numeric) else column


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
