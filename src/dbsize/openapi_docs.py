"""Shared OpenAPI declarations: the problem+json schema every route may answer with."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["https://dbsize.dev/problems/not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str | None = Field(default=None, examples=["instance 42 does not exist"])
    instance: str | None = Field(default=None, examples=["/v1/instances/42"])
    errors: list[dict[str, Any]] | None = Field(
        default=None,
        description="One entry per bad field or row: a JSON pointer and what is wrong.",
        examples=[[{"pointer": "#/samples/3/size_mb", "detail": "must be >= 0"}]],
    )


def _problem(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {}},
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: _problem("Not found"),
    409: _problem("Conflict with the current state"),
    422: _problem("Invalid input"),
    503: _problem("PostgreSQL or Redis unreachable; retry after `Retry-After` seconds"),
}


def problem_declaration(description: str) -> dict[str, Any]:
    """A problem+json response declared after the routes were built (no ``model`` needed: the
    Problem schema is already a component, since PROBLEM_RESPONSES uses it)."""
    return {
        "description": description,
        "headers": {
            "WWW-Authenticate": {
                "description": "The Bearer challenge (RFC 6750)",
                "schema": {"type": "string"},
            }
        },
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses one route can answer (503 is always possible: a backing server can
    be down)."""
    return {status: PROBLEM_RESPONSES[status] for status in (*statuses, 503)}
