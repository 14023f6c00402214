"""The synchronous client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any, Self

import httpx

from dbsize.client._common import (
    DEFAULT_URL,
    LONG_POLL_SECONDS,
    JobWaitTimeout,
    M,
    _Call,
    _Calls,
    _client_kwargs,
    _connection_failed,
    _exact,
    _params,
    _parse,
    _quote,
)
from dbsize.instances.schemas import InstanceRead
from dbsize.jobs.schemas import JobCreate, JobRead
from dbsize.pagination import Page
from dbsize.statistics.schemas import (
    DatabaseCapacity,
    DatabaseStatistics,
    DatabaseStatisticsSeries,
    Forecast,
    ForecastRow,
    Freshness,
    InstanceSeries,
    InstanceStatistics,
    TopGrowers,
)


class DbsizeClient:
    """Synchronous client. ``api_key`` is sent as ``Authorization: Bearer <key>``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._http = httpx.Client(**_client_kwargs(base_url, api_key, timeout), transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call) -> httpx.Response:
        try:
            return self._http.request(
                call.method,
                call.path,
                params=tuple(call.params),
                json=call.json,
                headers=call.headers,
                timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise _connection_failed(self.base_url, exc) from exc

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        return _parse(model, self._send(_Call("GET", path, _params(**params))))

    # Jobs
    def submit_job(
        self, body: JobCreate | None = None, *, idempotency_key: str | None = None, **fields: Any
    ) -> JobRead:
        """Submit an aggregation job (a JobCreate, or its fields as keywords)."""
        return _parse(JobRead, self._send(_Calls.submit_job(body, idempotency_key, fields)))

    def get_job(self, job_id: uuid.UUID | str) -> JobRead:
        return _parse(JobRead, self._send(_Calls.get_job(job_id)))

    def wait_for_job(
        self,
        job_id: uuid.UUID | str,
        *,
        timeout: float | None = None,
        on_change: Callable[[JobRead], None] | None = None,
    ) -> JobRead:
        """Follow a job until it is done (long-poll; ``on_change`` sees every new state).
        Raises :class:`JobWaitTimeout` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        response = self._send(_Calls.get_job(job_id))
        job = _parse(JobRead, response)
        while True:
            if on_change is not None:
                on_change(job)
            if job.done:
                return job
            remaining = LONG_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise JobWaitTimeout(job)
            wait = max(1, min(LONG_POLL_SECONDS, int(remaining)))
            response = self._send(_Calls.get_job(job_id, wait, response.headers.get("etag")))
            if response.status_code != 304:
                job = _parse(JobRead, response)

    # Statistics
    def database_statistics(
        self, period_type: str, *, cursor: str | None = None, **filters: Any
    ) -> Page[DatabaseStatistics]:
        """One page of ``/v1/statistics/databases`` (filters as the API names them)."""
        call = _Calls.page("databases", period_type, cursor, filters)
        return _parse(Page[DatabaseStatistics], self._send(call))

    def instance_statistics(
        self, period_type: str, *, cursor: str | None = None, **filters: Any
    ) -> Page[InstanceStatistics]:
        call = _Calls.page("instances", period_type, cursor, filters)
        return _parse(Page[InstanceStatistics], self._send(call))

    def iter_database_statistics(
        self, period_type: str, **filters: Any
    ) -> Iterator[DatabaseStatistics]:
        """Every row, page after page."""
        cursor: str | None = None
        while True:
            page = self.database_statistics(period_type, cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def iter_instance_statistics(
        self, period_type: str, **filters: Any
    ) -> Iterator[InstanceStatistics]:
        cursor: str | None = None
        while True:
            page = self.instance_statistics(period_type, cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def instance_series(
        self,
        instance_id: int,
        period_type: str,
        *,
        start: date | None = None,
        end: date | None = None,
        include_databases: bool = False,
    ) -> InstanceSeries:
        include = "databases" if include_databases else None
        return self._get(
            InstanceSeries, f"/v1/instances/{instance_id}/statistics",
            period_type=period_type, start=start, end=end, include=include,
        )  # fmt: skip

    def database_series(
        self,
        instance_id: int,
        database_name: str,
        period_type: str,
        *,
        start: date | None = None,
        end: date | None = None,
    ) -> DatabaseStatisticsSeries:
        path = f"/v1/instances/{instance_id}/databases/{_quote(database_name)}/statistics"
        return self._get(
            DatabaseStatisticsSeries, path, period_type=period_type, start=start, end=end
        )

    def top(self, period_type: str, **filters: Any) -> TopGrowers:
        """Top growers (``level``, ``by``, ``n``, ``complete``, instance filters)."""
        return self._get(TopGrowers, "/v1/statistics/top", period_type=period_type, **filters)

    def forecast(self, *, cursor: str | None = None, **filters: Any) -> Forecast:
        """One page of the fleet forecast (``level``, ``threshold_mb``, ``horizon_days``, ...)."""
        return _parse(Forecast, self._send(_Calls.forecast(cursor, filters)))

    def iter_forecast(self, **filters: Any) -> Iterator[ForecastRow]:
        cursor: str | None = None
        while True:
            page = self.forecast(cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def freshness(self) -> Freshness:
        return self._get(Freshness, "/v1/freshness")

    # Instances and capacities
    def instance_by_name(self, name: str) -> InstanceRead:
        """The instance with exactly this name (NotFoundError otherwise)."""
        page = self._get(Page[InstanceRead], "/v1/instances", name=name, limit=500)
        return _exact(page, name)

    def set_database_capacity(
        self, instance_id: int, database_name: str, capacity_mb: Decimal | float
    ) -> DatabaseCapacity:
        path = f"/v1/instances/{instance_id}/databases/{_quote(database_name)}/capacity"
        call = _Call("PUT", path, json={"capacity_mb": str(capacity_mb)})
        return _parse(DatabaseCapacity, self._send(call))
