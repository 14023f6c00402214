"""What the sync and async clients share: errors, query parameters, the requests (no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from dbsize.instances.schemas import InstanceRead
from dbsize.jobs.schemas import JobCreate, JobRead
from dbsize.pagination import Page

DEFAULT_URL = "http://127.0.0.1:8000"
LONG_POLL_SECONDS = 25
M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """The service answered a problem (RFC 9457); ``problem`` is its body."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        self.title = str(problem.get("title") or "HTTP error")
        self.detail = problem.get("detail")
        super().__init__(f"{status} {self.title}" + (f": {self.detail}" if self.detail else ""))


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class InvalidInputError(ApiError):
    pass


class UnauthorizedError(ApiError):
    """401 or 403: a missing, wrong, or insufficiently scoped API key."""


class UnavailableError(ApiError):
    """503: a backing server is down; retry after ``retry_after`` seconds."""

    retry_after: int | None = None


class ConnectionFailed(ApiError):
    """The service could not be reached at all (no HTTP answer)."""


class JobWaitTimeout(TimeoutError):
    def __init__(self, job: JobRead) -> None:
        self.job = job
        super().__init__(f"job {job.id} is still {job.status.value}")


_ERRORS: dict[int, type[ApiError]] = {
    401: UnauthorizedError,
    403: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidInputError,
    503: UnavailableError,
}


def error_of(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"title": response.reason_phrase, "detail": response.text[:200] or None}
    error = _ERRORS.get(response.status_code, ApiError)(response.status_code, body)
    if isinstance(error, UnavailableError) and response.headers.get("retry-after", "").isdigit():
        error.retry_after = int(response.headers["retry-after"])
    return error


def _connection_failed(base_url: str, exc: httpx.HTTPError) -> ConnectionFailed:
    detail = f"dbsize at {base_url} is not reachable ({type(exc).__name__}: {exc})"
    return ConnectionFailed(0, {"title": "Connection failed", "detail": detail})


def _params(**values: Any) -> list[tuple[str, str]]:
    """Query parameters: None is left out, lists repeat, booleans are true/false."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None:
                continue
            text = (
                str(item).lower() if isinstance(item, bool) else str(getattr(item, "value", item))
            )
            pairs.append((name, text))
    return pairs


@dataclass
class _Call:
    """One request and how to read its answer: shared by the sync and async clients."""

    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None


def _job_body(body: JobCreate | None, fields: dict[str, Any]) -> Any:
    request = body if body is not None else JobCreate(**fields)
    return request.model_dump(mode="json", exclude_defaults=True)


def _statistics_params(period_type: str, filters: Mapping[str, Any]) -> list[tuple[str, str]]:
    return _params(period_type=period_type, **filters)


class _Calls:
    """The API's requests, one method each (no I/O)."""

    @staticmethod
    def submit_job(
        body: JobCreate | None, idempotency_key: str | None, fields: dict[str, Any]
    ) -> _Call:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return _Call("POST", "/v1/aggregation-jobs", json=_job_body(body, fields), headers=headers)

    @staticmethod
    def get_job(job_id: uuid.UUID | str, wait: int = 0, etag: str | None = None) -> _Call:
        headers = {"If-None-Match": etag} if etag else {}
        params = _params(wait=wait or None)
        return _Call("GET", f"/v1/aggregation-jobs/{job_id}", params, headers=headers,
                     timeout=wait + 30 if wait else None)  # fmt: skip

    @staticmethod
    def page(kind: str, period_type: str, cursor: str | None, filters: Mapping[str, Any]) -> _Call:
        params = _statistics_params(period_type, {**filters, "cursor": cursor})
        return _Call("GET", f"/v1/statistics/{kind}", params)

    @staticmethod
    def forecast(cursor: str | None, filters: Mapping[str, Any]) -> _Call:
        return _Call("GET", "/v1/forecast", _params(**filters, cursor=cursor))


def _client_kwargs(base_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    headers = {"User-Agent": "dbsize-client"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return {"base_url": base_url.rstrip("/"), "headers": headers, "timeout": timeout}


def _parse(model: type[M], response: httpx.Response) -> M:
    if response.status_code >= 400:
        raise error_of(response)
    return model.model_validate_json(response.content)


def _exact(page: Page[InstanceRead], name: str) -> InstanceRead:
    for instance in page.items:
        if instance.name == name:
            return instance
    raise NotFoundError(404, {"title": "Not found", "detail": f"no instance is named {name!r}"})


def _quote(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")
