"""The asynchronous client."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date
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
)
from dbsize.instances.schemas import InstanceRead
from dbsize.jobs.schemas import JobCreate, JobRead
from dbsize.pagination import Page
from dbsize.statistics.schemas import (
    DatabaseStatistics,
    Forecast,
    Freshness,
    InstanceSeries,
    InstanceStatistics,
    TopGrowers,
)


class AsyncDbsizeClient:
    """The same API, async (``async with AsyncDbsizeClient(url) as dbsize: ...``)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        kwargs = _client_kwargs(base_url, api_key, timeout)
        self._http = httpx.AsyncClient(**kwargs, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call) -> httpx.Response:
        try:
            return await self._http.request(
                call.method,
                call.path,
                params=tuple(call.params),
                json=call.json,
                headers=call.headers,
                timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise _connection_failed(self.base_url, exc) from exc

    async def _get(self, model: type[M], path: str, **params: Any) -> M:
        return _parse(model, await self._send(_Call("GET", path, _params(**params))))

    async def submit_job(
        self, body: JobCreate | None = None, *, idempotency_key: str | None = None, **fields: Any
    ) -> JobRead:
        call = _Calls.submit_job(body, idempotency_key, fields)
        return _parse(JobRead, await self._send(call))

    async def get_job(self, job_id: uuid.UUID | str) -> JobRead:
        return _parse(JobRead, await self._send(_Calls.get_job(job_id)))

    async def wait_for_job(
        self,
        job_id: uuid.UUID | str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (a deadline over several long-polls)
        on_change: Callable[[JobRead], None] | None = None,
    ) -> JobRead:
        deadline = None if timeout is None else time.monotonic() + timeout
        response = await self._send(_Calls.get_job(job_id))
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
            call = _Calls.get_job(job_id, wait, response.headers.get("etag"))
            response = await self._send(call)
            if response.status_code != 304:
                job = _parse(JobRead, response)

    async def database_statistics(
        self, period_type: str, *, cursor: str | None = None, **filters: Any
    ) -> Page[DatabaseStatistics]:
        call = _Calls.page("databases", period_type, cursor, filters)
        return _parse(Page[DatabaseStatistics], await self._send(call))

    async def instance_statistics(
        self, period_type: str, *, cursor: str | None = None, **filters: Any
    ) -> Page[InstanceStatistics]:
        call = _Calls.page("instances", period_type, cursor, filters)
        return _parse(Page[InstanceStatistics], await self._send(call))

    async def iter_database_statistics(
        self, period_type: str, **filters: Any
    ) -> AsyncIterator[DatabaseStatistics]:
        cursor: str | None = None
        while True:
            page = await self.database_statistics(period_type, cursor=cursor, **filters)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def instance_series(
        self,
        instance_id: int,
        period_type: str,
        *,
        start: date | None = None,
        end: date | None = None,
        include_databases: bool = False,
    ) -> InstanceSeries:
        include = "databases" if include_databases else None
        return await self._get(
            InstanceSeries, f"/v1/instances/{instance_id}/statistics",
            period_type=period_type, start=start, end=end, include=include,
        )  # fmt: skip

    async def top(self, period_type: str, **filters: Any) -> TopGrowers:
        return await self._get(TopGrowers, "/v1/statistics/top", period_type=period_type, **filters)

    async def forecast(self, *, cursor: str | None = None, **filters: Any) -> Forecast:
        return _parse(Forecast, await self._send(_Calls.forecast(cursor, filters)))

    async def freshness(self) -> Freshness:
        return await self._get(Freshness, "/v1/freshness")

    async def instance_by_name(self, name: str) -> InstanceRead:
        page = await self._get(Page[InstanceRead], "/v1/instances", name=name, limit=500)
        return _exact(page, name)
