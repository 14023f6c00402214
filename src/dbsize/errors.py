"""The DbsizeError family and the one handler that renders RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Problem types are relative references to pages this service serves (dbsize.problem_pages), so
# they resolve wherever the service runs, offline too, and never name a domain we do not own.
PROBLEM_BASE = "/problems/"
# What pydantic puts before the message of a ValueError or assert raised in a validator.
_LIBRARY_PREFIXES = ("Value error, ", "Assertion failed, ")
RETRY_AFTER_SECONDS = 5

log = logging.getLogger("dbsize.errors")


class DbsizeError(Exception):
    """A failure the caller can act on; carries its HTTP status and a stable problem type."""

    status: int = 500
    title: str = "Internal error"
    type_slug: str = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extensions = extensions

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        return problem(
            self.status,
            self.title,
            self.detail,
            type_slug=self.type_slug,
            instance=instance,
            errors=self.errors,
            **self.extensions,
        )


class NotFound(DbsizeError):
    status, title, type_slug = 404, "Not found", "not-found"


class Conflict(DbsizeError):
    status, title, type_slug = 409, "Conflict", "conflict"


class InvalidInput(DbsizeError):
    status, title, type_slug = 422, "Invalid input", "invalid-input"


class PayloadTooLarge(DbsizeError):
    status, title, type_slug = 413, "Payload too large", "payload-too-large"


class ServiceUnavailable(DbsizeError):
    status, title, type_slug = 503, "Service unavailable", "service-unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5, **extensions: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **extensions)


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_slug: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + type_slug if type_slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    body.update(extensions)
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _pointer(loc: tuple[Any, ...]) -> str:
    return "#/" + "/".join(str(part) for part in loc)


def clean_message(message: str) -> str:
    """A validation message without the library's prefix (``Value error, ...``)."""
    for prefix in _LIBRARY_PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "pointer": _pointer(tuple(err.get("loc", ()))),
            "detail": clean_message(str(err.get("msg", "invalid"))),
        }
        for err in exc.errors()
    ]


def unavailable_dependency(exc: BaseException) -> str | None:
    """Which backing server a connection-level failure came from (the caller should retry
    later), or None when ``exc`` is not one."""
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "Redis"
    if isinstance(exc, redis.exceptions.WatchError) and isinstance(
        exc.__context__, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
    ):
        # redis-py reports a connection lost while a pipeline WATCHes a key as a WatchError
        # raised inside the handler of the connection error (arq's start_jobs does this on
        # every job it picks): the cause is an outage, not a lost race.
        return "Redis"
    if isinstance(exc, DBAPIError):
        disconnected = exc.connection_invalidated or isinstance(
            exc, OperationalError | InterfaceError
        )
        return "PostgreSQL" if disconnected else None
    if isinstance(
        exc,
        asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.ConnectionDoesNotExistError
        | asyncpg.exceptions.TooManyConnectionsError,
    ):
        return "PostgreSQL"
    if isinstance(exc, OSError):  # asyncpg's connect raises the socket error itself
        return "PostgreSQL or Redis"
    return None


# Failures that reach the handlers below as themselves. Registering the classes (not only
# ``Exception``) lets Starlette's ExceptionMiddleware answer them; the ``Exception`` handler runs in
# ServerErrorMiddleware, which re-raises after responding, so every outage request would also be
# logged as a crash by the server.
_INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    DBAPIError,
    redis.exceptions.RedisError,
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(DbsizeError)
    async def _dbsize_error(request: Request, exc: DbsizeError) -> JSONResponse:
        return problem_response(exc.to_problem(request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = problem(
            422,
            "Invalid input",
            "The request does not match the schema; see errors.",
            type_slug="invalid-input",
            instance=request.url.path,
            errors=validation_errors(exc),
        )
        return problem_response(body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI: a body that cannot be decoded (not UTF-8, not JSON)
            body = problem(
                422,
                "Invalid input",
                f"The body cannot be read: {exc.detail}.",
                type_slug="invalid-input",
                instance=request.url.path,
                errors=[{"pointer": "#/body", "detail": str(exc.detail)}],
            )
            return problem_response(body)
        body = problem(exc.status_code, str(exc.detail), instance=request.url.path)
        return problem_response(body, dict(exc.headers or {}))

    for error_class in (*_INFRASTRUCTURE_ERRORS, Exception):
        app.add_exception_handler(error_class, _unexpected)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        log.warning(
            "%s unavailable on %s: %s: %s", dependency, request.url.path, type(exc).__name__, exc
        )
        body = problem(
            503,
            "Service unavailable",
            f"{dependency} is not reachable; retry later.",
            type_slug="service-unavailable",
            instance=request.url.path,
        )
        return problem_response(body, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    body = problem(500, "Internal error", type_slug="internal", instance=request.url.path)
    return problem_response(body)
