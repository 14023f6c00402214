"""A small typed client of the dbsize HTTP API, for other services and the CLI.

Sync (:class:`DbsizeClient`) and async (:class:`AsyncDbsizeClient`) with the same methods; both
return the service's own pydantic schemas. Errors are :class:`ApiError` subclasses carrying the
RFC 9457 problem the service answered. Waiting for a job is a long-poll (``?wait=`` with
``If-None-Match``): each request returns as soon as the job changes, never a busy loop.

    from dbsize.client import DbsizeClient
    with DbsizeClient("http://127.0.0.1:8000", api_key=None) as dbsize:
        job = dbsize.submit_job(start=date(2026, 1, 1), end=date(2026, 3, 31))
        dbsize.wait_for_job(job.id)
        for row in dbsize.iter_database_statistics("monthly", latest=True):
            print(row.instance_name, row.database_name, row.avg_size_mb)
"""

from dbsize.client._common import (
    DEFAULT_URL,
    ApiError,
    ConflictError,
    ConnectionFailed,
    InvalidInputError,
    JobWaitTimeout,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
)
from dbsize.client.asynchronous import AsyncDbsizeClient
from dbsize.client.sync import DbsizeClient

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncDbsizeClient",
    "ConflictError",
    "ConnectionFailed",
    "DbsizeClient",
    "InvalidInputError",
    "JobWaitTimeout",
    "NotFoundError",
    "UnauthorizedError",
    "UnavailableError",
]
