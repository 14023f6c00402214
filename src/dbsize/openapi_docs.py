"""Shared OpenAPI declarations: the problem+json responses a route declares.

A route lists exactly the problems it can answer, each with its own example and the
``application/problem+json`` media type::

    @router.get("/{instance_id}", responses=problem_responses(404, 422, 503))

``422``: any route with a parameter or a body (schema, ranges, text PostgreSQL cannot store).
``413``: any route with a body (``DBSIZE_MAX_BODY_BYTES``, ``dbsize.request_guard``).
``503``: any route that reads PostgreSQL or Redis. ``401``/``403`` are added from a route's
scope decision (``dbsize.keys.auth.declare_auth_responses``). The fuzzing test
(tests/test_schemathesis.py) fails on a status a route answers without declaring it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from dbsize.errors import PROBLEM_MEDIA_TYPE, problem


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="The problem type: a page of this service (`GET` it) describing it, "
        "relative to the service's address",
    )
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None,
        description="One entry per bad field or row: a JSON pointer and what is wrong.",
    )


def _example(status: int, title: str, slug: str, detail: str, instance: str, **extra: Any) -> Any:
    return problem(status, title, detail, type_slug=slug, instance=instance, **extra)


# status -> (description, example). Each declared problem shows its own example.
PROBLEMS: dict[int, tuple[str, dict[str, Any]]] = {
    401: (
        "Missing, unknown or revoked API key",
        _example(
            401, "Unauthorized", "unauthorized", "send Authorization: Bearer <key>", "/v1/instances"
        ),
    ),
    403: (
        "The key's scope does not allow this route",
        _example(
            403,
            "Forbidden",
            "forbidden",
            "this route needs a key with scope 'write'",
            "/v1/instances",
        ),
    ),
    404: (
        "The resource does not exist",
        _example(404, "Not found", "not-found", "instance 42 does not exist", "/v1/instances/42"),
    ),
    409: (
        "Conflict with the current state",
        _example(
            409,
            "Conflict",
            "conflict",
            "an instance named 'pg-orders-01' already exists",
            "/v1/instances",
        ),
    ),
    413: (
        "The body is over the size limit; refused before it is parsed",
        _example(
            413,
            "Payload too large",
            "payload-too-large",
            "the body is 80000000 bytes; the limit is 67108864 bytes (DBSIZE_MAX_BODY_BYTES)",
            "/v1/size-samples",
        ),
    ),
    415: (
        "The body's media type is not accepted",
        _example(
            415,
            "Unsupported media type",
            "unsupported-media-type",
            "'text/plain' is not accepted; send application/json or text/csv",
            "/v1/size-samples",
        ),
    ),
    422: (
        "Invalid input: a parameter or the body is wrong; `errors` points at each bad field",
        _example(
            422,
            "Invalid input",
            "invalid-input",
            "The request does not match the schema; see errors.",
            "/v1/instances",
            errors=[
                {"pointer": "#/body/port", "detail": "Input should be less than or equal to 65535"}
            ],
        ),
    ),
    503: (
        "PostgreSQL or Redis is unreachable; retry after `Retry-After` seconds",
        _example(
            503,
            "Service unavailable",
            "service-unavailable",
            "PostgreSQL is not reachable; retry later.",
            "/v1/instances",
        ),
    ),
}


def declared_problem(status: int, description: str | None = None) -> dict[str, Any]:
    """One declared problem response (for ``responses=``), with its own example."""
    default, example = PROBLEMS[status]
    return {
        "model": Problem,
        "description": description or default,
        "content": {PROBLEM_MEDIA_TYPE: {"example": example}},
    }


def problem_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The problem responses of a route; ``descriptions`` override by status (``_409="..."``)."""
    return {status: declared_problem(status, descriptions.get(f"_{status}")) for status in statuses}


# The usual set of a route that reads a resource by id and may conflict; prefer
# problem_responses with the statuses the route can really answer.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = problem_responses(404, 409, 422, 503)


def problem_declaration(description: str, status: int | None = None) -> dict[str, Any]:
    """A problem+json response declared after the routes were built (no ``model`` needed: the
    Problem schema is already a component, since the routes' problem_responses use it)."""
    content: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
    if status is not None:
        content["example"] = PROBLEMS[status][1]
    return {
        "description": description,
        "headers": {
            "WWW-Authenticate": {
                "description": "The Bearer challenge (RFC 6750)",
                "schema": {"type": "string"},
            }
        },
        "content": {PROBLEM_MEDIA_TYPE: content},
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses one route can answer (503 is always possible: a backing server can
    be down)."""
    return problem_responses(*statuses, 503)


def problem_media_types(spec: dict[str, Any]) -> dict[str, Any]:
    """Every error response answers ``application/problem+json`` with the Problem schema (what
    the one handler in errors.py sends), whatever a route declared: FastAPI files a response
    model under ``application/json`` and adds its own ``HTTPValidationError`` 422 to routes that
    declare none. A declared example is kept; otherwise the status's own example is added."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for code, response in operation.get("responses", {}).items():
                if not code.isdigit() or int(code) < 400:
                    continue
                examples = [
                    media["example"]
                    for media in response.get("content", {}).values()
                    if "example" in media
                ]
                media_type: dict[str, Any] = {"schema": problem_ref}
                if examples or int(code) in PROBLEMS:
                    media_type["example"] = examples[0] if examples else PROBLEMS[int(code)][1]
                response["content"] = {PROBLEM_MEDIA_TYPE: media_type}
                if response.get("description") == "Validation Error":
                    response["description"] = PROBLEMS[422][0]
    schemas = spec.get("components", {}).get("schemas", {})
    if "Problem" not in schemas:
        schemas["Problem"] = Problem.model_json_schema()
    rendered = str(spec.get("paths"))
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"/{unused}'" not in rendered:
            schemas.pop(unused, None)
    return spec


def install_openapi(app: FastAPI) -> None:
    """The app's document, with problem responses under their own media type only."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_media_types(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
