"""Raw request bodies (JSON or CSV) → a typed :class:`SampleBatch`. Pure: no I/O.

The well-formed case costs one pydantic-core pass over the bytes. Only when that fails do we pay
for a second look, which keeps the rows that did validate so that the service can still check them
against the database: the client then gets every bad row of the request in one 422, not the shape
errors first and the unknown instances on the next attempt.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from dbsize.errors import InvalidInput, PayloadTooLarge, clean_message
from dbsize.samples.schemas import BATCH_ADAPTER, ROWS_ADAPTER, SAMPLE_FIELDS, SampleRow

REQUIRED_CSV_COLUMNS = ("database_name", "collected_date", "size_mb")

MAX_LISTED_ERRORS = 1000
"""A 422 lists at most this many errors; its ``invalid_rows`` counts every bad row."""


@dataclass(frozen=True)
class RowError:
    """What is wrong with one row; ``row`` is its 0-based position in the request."""

    row: int
    field: str | None
    detail: str


@dataclass(frozen=True)
class SampleBatch:
    """The rows of one request that passed shape validation, and the shape errors of the others.

    ``positions[i]`` is the request position of ``rows[i]``; for CSV ``lines`` maps a position to
    its line number in the file.
    """

    rows: Sequence[SampleRow]
    positions: Sequence[int]
    received: int
    source: Literal["json", "csv"] = "json"
    errors: Sequence[RowError] = ()
    lines: Sequence[int] | None = field(default=None, repr=False)

    def problem_errors(self, errors: Iterable[RowError]) -> list[dict[str, Any]]:
        """problem+json ``errors`` entries: JSON pointers into the body (CSV: plus the line)."""
        prefix = "#/samples/" if self.source == "json" else "#/rows/"
        out: list[dict[str, Any]] = []
        for error in errors:
            pointer = f"{prefix}{error.row}" + (f"/{error.field}" if error.field else "")
            entry: dict[str, Any] = {"pointer": pointer, "detail": error.detail}
            if self.lines is not None:
                entry["line"] = self.lines[error.row]
            out.append(entry)
        return out

    def rejection(self, errors: Sequence[RowError], *, unlisted_rows: int = 0) -> InvalidInput:
        """The one 422 for a request with bad rows; nothing of it is written.

        ``unlisted_rows`` counts bad rows known to exist but not among ``errors``.
        """
        ordered = sorted(errors, key=lambda e: e.row)
        invalid_rows = len({e.row for e in ordered}) + unlisted_rows
        return InvalidInput(
            f"{invalid_rows} of {self.received} rows are invalid; nothing was written",
            errors=self.problem_errors(ordered[:MAX_LISTED_ERRORS]),
            invalid_rows=invalid_rows,
        )


def _check_count(count: int, max_rows: int) -> None:
    if count > max_rows:
        raise PayloadTooLarge(
            f"{count} samples in one request; the limit is {max_rows} "
            "(DBSIZE_MAX_SAMPLES_PER_REQUEST); split the batch"
        )


def _row_errors(
    exc: ValidationError, depth: int
) -> tuple[dict[int, list[RowError]], list[dict[str, Any]]]:
    """Split pydantic errors into per-row errors (loc ``[prefix…, index, field?]``) and the rest."""
    by_row: dict[int, list[RowError]] = {}
    other: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = err["loc"]
        row = loc[depth] if len(loc) > depth else None
        if isinstance(row, int):
            field_name = "/".join(str(part) for part in loc[depth + 1 :]) or None
            by_row.setdefault(row, []).append(RowError(row, field_name, clean_message(err["msg"])))
        else:
            pointer = "#/" + "/".join(str(part) for part in loc) if loc else "#"
            other.append({"pointer": pointer, "detail": clean_message(err["msg"])})
    return by_row, other


def _salvage(
    raw_rows: Sequence[Any],
    bad: dict[int, list[RowError]],
    source: Literal["json", "csv"],
    lines: Sequence[int] | None = None,
) -> SampleBatch:
    """Re-validate the rows pydantic did not object to, so the database checks can run on them."""
    positions = [i for i in range(len(raw_rows)) if i not in bad]
    rows: list[SampleRow] = []
    try:
        rows = ROWS_ADAPTER.validate_python([raw_rows[i] for i in positions])
    except ValidationError as exc:
        # Python-mode validation is laxer than JSON mode, so this should not happen; if it does,
        # the newly failing rows simply join the bad ones and the rest are dropped from the checks.
        again, _ = _row_errors(exc, 0)
        for index, errors in again.items():
            bad.setdefault(positions[index], []).extend(
                RowError(positions[index], e.field, e.detail) for e in errors
            )
        positions = []
    errors = [error for row in sorted(bad) for error in bad[row]]
    return SampleBatch(rows, positions, len(raw_rows), source, errors, lines)


def parse_json(body: bytes, *, max_rows: int) -> SampleBatch:
    """``{"samples": [...]}`` → batch. JSON is validated strictly: numbers must be numbers."""
    try:
        rows = BATCH_ADAPTER.validate_json(body, strict=True)["samples"]
    except ValidationError as exc:
        bad, other = _row_errors(exc, 1)
        if other:
            raise InvalidInput("The body is not a sample batch; see errors.", errors=other) from exc
        raw_rows = json.loads(body)["samples"]  # valid JSON with a list, or `other` was not empty
        _check_count(len(raw_rows), max_rows)
        return _salvage(raw_rows, bad, "json")
    _check_count(len(rows), max_rows)
    return SampleBatch(rows, range(len(rows)), len(rows), "json")


def _csv_records(body: bytes) -> tuple[list[str], list[list[str]], list[int]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The CSV body is not UTF-8.") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        records: list[list[str]] = []
        lines: list[int] = []
        for values in reader:
            if values:  # a blank line is not a row
                records.append(values)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise InvalidInput(f"The CSV body cannot be read: {exc} (line {reader.line_num}).") from exc
    return header, records, lines


def _check_header(header: Sequence[str]) -> None:
    if not header:
        raise InvalidInput("The CSV body is empty; it needs a header line.")
    problems = [
        {"pointer": f"#/header/{i}", "detail": f"unknown column {name!r}"}
        for i, name in enumerate(header)
        if name not in SAMPLE_FIELDS
    ]
    problems += [
        {"pointer": f"#/header/{i}", "detail": f"column {name!r} appears twice"}
        for i, name in enumerate(header)
        if name in header[:i]
    ]
    problems += [
        {"pointer": "#/header", "detail": f"column {name!r} is missing"}
        for name in REQUIRED_CSV_COLUMNS
        if name not in header
    ]
    if "instance_id" not in header and "instance_name" not in header:
        problems.append(
            {"pointer": "#/header", "detail": "a column 'instance_id' or 'instance_name' is needed"}
        )
    if problems:
        optional = ", ".join(f for f in SAMPLE_FIELDS if f not in REQUIRED_CSV_COLUMNS)
        raise InvalidInput(
            "The CSV header is invalid; expected columns: "
            f"{', '.join(REQUIRED_CSV_COLUMNS)} (required) and {optional} "
            "(instance_id or instance_name required).",
            errors=problems,
        )


def parse_csv(body: bytes, *, max_rows: int) -> SampleBatch:
    """A header line naming ``SampleRow`` fields, then one row per line; empty cells are absent.

    Error pointers are ``#/rows/<i>/<field>`` with ``i`` the 0-based data row (blank lines are not
    rows), and each error also carries ``line``, the 1-based line number in the file.
    """
    header, records, lines = _csv_records(body)
    _check_header(header)
    _check_count(len(records), max_rows)
    width = len(header)
    raw_rows: list[dict[str, str]] = []
    bad: dict[int, list[RowError]] = {}
    for i, values in enumerate(records):
        if len(values) != width:
            detail = f"has {len(values)} fields; the header has {width}"
            bad[i] = [RowError(i, None, detail)]
        # A short row is already an error; zip only has to stop at the shorter side.
        cells = zip(header, values, strict=False)
        raw_rows.append({name: value for name, value in cells if value != ""})
    if not bad:
        try:
            rows = ROWS_ADAPTER.validate_python(raw_rows)
        except ValidationError as exc:
            bad, _ = _row_errors(exc, 0)
        else:
            return SampleBatch(rows, range(len(rows)), len(rows), "csv", lines=lines)
    return _salvage(raw_rows, bad, "csv", lines)


def parse_rows(rows: Sequence[Mapping[str, Any]], *, max_rows: int) -> SampleBatch:
    """Rows already in Python (the demo): the same validation as a request body."""
    _check_count(len(rows), max_rows)
    try:
        valid = ROWS_ADAPTER.validate_python(rows)
    except ValidationError as exc:
        bad, _ = _row_errors(exc, 0)
        return _salvage(rows, bad, "json")
    return SampleBatch(valid, range(len(valid)), len(valid), "json")
