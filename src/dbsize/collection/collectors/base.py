"""The one typed interface every engine's collector implements.

A collector opens ONE connection to one instance's server (with the instance's connect and
statement timeouts, read-only), reads the size of every user database, and returns them as
:class:`DatabaseSize` values, each saying which measure it is (``Measure``): engines report
different things, and a history must not silently change meaning (research note, 2.6).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

T = TypeVar("T")

BYTES_PER_MB = 1024 * 1024


class Measure(StrEnum):
    """What a collected size means."""

    # PostgreSQL pg_database_size: the files of the database's directories.
    database_files = "database_files"
    # MySQL/MariaDB information_schema.TABLES: data_length + index_length (InnoDB statistics,
    # approximate; refreshed for the session where the server caches them).
    table_statistics = "table_statistics"
    # SQL Server sys.master_files: allocated data (ROWS) and log (LOG) files.
    allocated_files = "allocated_files"
    # Oracle dba_data_files: allocated datafiles per tablespace.
    tablespace_files = "tablespace_files"


@dataclass(frozen=True)
class DatabaseSize:
    name: str
    size_bytes: int
    measure: Measure
    data_bytes: int | None = None
    log_bytes: int | None = None

    @property
    def size_mb(self) -> float:
        return round(self.size_bytes / BYTES_PER_MB, 3)

    @property
    def data_size_mb(self) -> float | None:
        return None if self.data_bytes is None else round(self.data_bytes / BYTES_PER_MB, 3)

    @property
    def log_size_mb(self) -> float | None:
        return None if self.log_bytes is None else round(self.log_bytes / BYTES_PER_MB, 3)


@dataclass(frozen=True)
class ConnectionTarget:
    """Where and how to connect. ``password`` is plaintext in memory only; never printed."""

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    database: str | None
    tls_mode: str
    connect_timeout_seconds: float
    statement_timeout_seconds: float


class CollectionFailed(Exception):
    """The server could not be read: refused, unreachable, timed out, denied. ``str()`` is the
    driver's reason with any secret removed (safe for records and logs)."""


AfterListing = Callable[[Sequence[str]], Awaitable[None]]
"""Called between listing the databases and sizing them (a seam for tests of a database dropped
in between); None in production."""


class Collector(Protocol):
    db_type: str
    measure: Measure

    async def collect(self, target: ConnectionTarget) -> list[DatabaseSize]: ...


async def connect_within(target: ConnectionTarget, connecting: Awaitable[T]) -> T:
    """The driver's connect, bounded by the instance's connect timeout as a whole (a driver's
    own timeout may cover the TCP connect only, not a server that accepts and never answers)."""
    try:
        return await asyncio.wait_for(connecting, target.connect_timeout_seconds)
    except TimeoutError as exc:
        raise CollectionFailed(
            f"TimeoutError: no answer from {target.host}:{target.port} within the connect "
            f"timeout ({target.connect_timeout_seconds:g} s)"
        ) from exc
    except Exception as exc:
        raise CollectionFailed(clean_reason(exc, target)) from exc


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def clean_reason(exc: BaseException, target: ConnectionTarget) -> str:
    """The driver's error text, with the password (and any URL credentials) removed."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if target.password:
        text = text.replace(target.password, "***")
    return _PASSWORD_IN_URL.sub(r"\1***@", text)[:2000]
