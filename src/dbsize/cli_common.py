"""What every ``dbsize`` command shares: the one-line error, settings, server checks, output.

A command module (``dbsize/<package>/cli.py``) imports from here, never from ``dbsize.cli``, so
that ``dbsize.cli`` can import the command modules to register them without an import cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dbsize.config import Settings, get_settings
from dbsize.connectivity import Unreachable, check_postgres, check_redis

# Exit statuses, documented in docs/operations.md ("Errors").
EXIT_FAILURE = 1  # the command could not do its job (a CliError, an unexpected error)
EXIT_USAGE = 2  # the command line itself is wrong (unknown option, value out of range)
EXIT_INTERRUPTED = 130  # Ctrl-C

# Human output (progress, tables, notes) goes to stderr; stdout carries only machine-readable
# results (JSON, YAML), so ``dbsize demo | jq`` keeps working.
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(Exception):
    """One line for the operator, printed as ``dbsize: <message>``; exit status 1."""


def load_settings() -> Settings:
    """The settings, or a CliError naming every invalid ``DBSIZE_*`` variable."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise CliError(describe_invalid(exc)) from exc


def describe_invalid(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = "DBSIZE_" + "_".join(str(part) for part in error["loc"]).upper()
        # Never echo a URL (it may carry a password) or a secret key back.
        hidden = name.endswith("_URL") or "SECRET" in name
        shown = "" if hidden else f"={error.get('input')!r}"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}{shown}: {message}")
    return "invalid " + "; ".join(problems)


def check_database(settings: Settings) -> None:
    try:
        asyncio.run(check_postgres(settings.database_url))
    except Unreachable as exc:
        raise CliError(str(exc)) from exc


def check_servers(settings: Settings) -> None:
    """Both backing servers answer, or a CliError naming the setting of the one that does not."""

    async def both() -> None:
        await check_postgres(settings.database_url)
        await check_redis(settings.redis_url)

    try:
        asyncio.run(both())
    except Unreachable as exc:
        raise CliError(str(exc)) from exc


def note(message: str) -> None:
    """One ``dbsize: ...`` line for the operator on stderr (not an error)."""
    stderr.print(f"dbsize: {message}", markup=False)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> None:
    """A rich table on stderr; ``rows`` are keyed by column name."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(column, "")) for column in columns))
    stderr.print(table)
