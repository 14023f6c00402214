"""Bad input is a 4xx problem naming what is wrong, never a 500, for every route.

Classes, not cases: integers beyond their column, text PostgreSQL cannot store, null for a
non-nullable field, bodies over the size limit, library prefixes in messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from dbsize import access_log
from dbsize.config import Settings
from dbsize.main import create_app
from tests.factories import create_instance
from tests.samples_helpers import client_for, post_csv

NUL = "contains a NUL character (U+0000), which cannot be stored"
INT4_MAX = 2**31 - 1
METHODS = {"get", "put", "post", "delete", "patch"}


def _schema(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def _integers(spec: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]) -> Any:
    """(where, schema) of every integer in ``schema``, through $refs, anyOf, items, properties."""
    ref = schema.get("$ref")
    if ref:
        if ref in seen:
            return
        seen = seen | {ref}
    schema = _schema(spec, schema)
    if schema.get("type") == "integer":
        yield where, schema
    for option in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        yield from _integers(spec, option, where, seen)
    if "items" in schema:
        yield from _integers(spec, schema["items"], f"{where}[]", seen)
    for name, sub in schema.get("properties", {}).items():
        yield from _integers(spec, sub, f"{where}.{name}", seen)


class TestIntegerBounds:
    def test_every_integer_parameter_and_body_field_has_both_bounds(self) -> None:
        """A new route or field without a range fails here, before the fuzzer finds its 500."""
        app: FastAPI = create_app(Settings.model_construct())
        spec = app.openapi()
        unbounded = []
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                if method not in METHODS:
                    continue
                name = f"{method.upper()} {path}"
                for parameter in operation.get("parameters", []):
                    where = f"{name} {parameter['in']} {parameter['name']}"
                    unbounded += [
                        w
                        for w, s in _integers(spec, parameter["schema"], where, set())
                        if "maximum" not in s or "minimum" not in s
                    ]
                content = operation.get("requestBody", {}).get("content", {})
                for media in content.values():
                    if "schema" in media:
                        unbounded += [
                            w
                            for w, s in _integers(spec, media["schema"], f"{name} body", set())
                            if "maximum" not in s or "minimum" not in s
                        ]
        assert unbounded == []

    @pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
    @pytest.mark.parametrize("instance_id", ["92014848792315", "-20378307898498", "0"])
    async def test_instance_id_beyond_the_column_is_422(
        self, client: AsyncClient, method: str, instance_id: str
    ) -> None:
        response = await client.request(
            method, f"/v1/instances/{instance_id}", json={} if method == "PATCH" else None
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["pointer"] == "#/path/instance_id"

    async def test_largest_instance_id_is_a_plain_404(self, client: AsyncClient) -> None:
        response = await client.get(f"/v1/instances/{INT4_MAX}")
        assert response.status_code == 404


class TestUnstorableText:
    async def test_nul_in_a_json_field_is_422_naming_it_and_nothing_is_created(
        self, client: AsyncClient
    ) -> None:
        response = await client.post(
            "/v1/instances",
            content=b'{"name": "pg\\u0000x", "db_type": "postgresql"}',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"] == [{"pointer": "#/body/name", "detail": NUL}]
        assert (await client.get("/v1/instances")).json()["items"] == []

    async def test_lone_surrogate_in_a_sample_is_422_naming_the_row_field(
        self, client: AsyncClient
    ) -> None:
        body = (
            b'{"samples": [{"instance_name": "a", "database_name": "ok", '
            b'"collected_date": "2026-01-01", "size_mb": 1}, {"instance_name": "a", '
            b'"database_name": "bad\\ud944x", "collected_date": "2026-01-01", "size_mb": 1}]}'
        )
        response = await client.post(
            "/v1/size-samples", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {
                "pointer": "#/body/samples/1/database_name",
                "detail": "contains a lone surrogate (U+D944), which is not valid Unicode",
            }
        ]

    async def test_a_surrogate_pair_is_an_ordinary_character(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/instances",
            content=b'{"name": "pg-\\ud83d\\ude00", "db_type": "postgresql"}',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "pg-\U0001f600"

    async def test_nul_in_a_query_parameter_is_422_naming_it(self, client: AsyncClient) -> None:
        response = await client.get("/v1/instances?name=a%00b")
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [{"pointer": "#/query/name", "detail": NUL}]

    async def test_nul_in_a_csv_body_is_422_with_its_line(self, client: AsyncClient) -> None:
        response = await post_csv(
            client,
            "instance_name,database_name,collected_date,size_mb\n"
            "a,ok,2026-01-01,1\na,b\x00d,2026-01-01,1\n",
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [{"pointer": "#/body", "line": 3, "detail": NUL}]


class TestBodyLimit:
    @pytest.fixture
    async def small_limit(self, settings: Settings) -> AsyncIterator[AsyncClient]:
        async with client_for(settings.model_copy(update={"max_body_bytes": 1024})) as client:
            yield client

    async def test_declared_length_over_the_limit_is_413_before_parsing(
        self, small_limit: AsyncClient
    ) -> None:
        # Not JSON at all: a parsed body would be a 422, so the 413 proves nothing was parsed.
        response = await small_limit.post(
            "/v1/size-samples", content=b"x" * 1025, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413, response.text
        assert response.json()["detail"] == (
            "the body is 1025 bytes; the limit is 1024 bytes (DBSIZE_MAX_BODY_BYTES)"
        )

    async def test_streamed_body_over_the_limit_is_413(self, small_limit: AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"y" * 500

        response = await small_limit.post(
            "/v1/instances", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413, response.text
        assert response.json()["detail"] == (
            "the body is over the limit; the limit is 1024 bytes (DBSIZE_MAX_BODY_BYTES)"
        )

    async def test_body_at_the_limit_is_parsed(self, small_limit: AsyncClient) -> None:
        body = b'{"name": "x", "db_type": "mysql"}'
        body += b" " * (1024 - len(body))
        response = await small_limit.post(
            "/v1/instances", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 201, response.text


class TestNullInPatch:
    @pytest.mark.parametrize("field", ["name", "db_type", "tags", "is_active", "tls_mode"])
    async def test_null_for_a_non_nullable_field_is_422_naming_it(
        self, client: AsyncClient, field: str
    ) -> None:
        instance = await create_instance(client, "pg-null")
        response = await client.patch(f"/v1/instances/{instance['id']}", json={field: None})
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {"pointer": f"#/body/{field}", "detail": f"{field} cannot be null"}
        ]

    async def test_null_for_a_nullable_field_clears_it(self, client: AsyncClient) -> None:
        instance = await create_instance(client, "pg-host", host="10.0.0.1")
        response = await client.patch(f"/v1/instances/{instance['id']}", json={"host": None})
        assert response.status_code == 200, response.text
        assert response.json()["host"] is None


class TestMessages:
    async def test_model_rule_message_has_no_library_prefix(self, client: AsyncClient) -> None:
        response = await client.post("/v1/aggregation-jobs", json={"start": "2026-01-01"})
        assert response.status_code == 422, response.text
        assert [e["detail"] for e in response.json()["errors"]] == ["start and end go together"]

    async def test_undecodable_json_body_is_422_not_400(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/instances", content=b"\xff\xfe{", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"


class _Recorder:
    """Stands in for the access logger: the lines, whatever structlog's configuration is."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append({"event": event, **fields})


class TestAccessLog:
    @pytest.fixture
    def access(self, monkeypatch: pytest.MonkeyPatch) -> _Recorder:
        recorder = _Recorder()
        monkeypatch.setattr(access_log, "log", recorder)
        return recorder

    async def test_one_structured_line_per_request_with_the_route_template(
        self, client: AsyncClient, access: _Recorder
    ) -> None:
        response = await client.get("/v1/instances/123?x=secret")
        assert response.status_code == 404
        assert len(access.lines) == 1
        line = access.lines[0]
        assert (line["event"], line["method"], line["route"], line["status"]) == (
            "request",
            "GET",
            "/v1/instances/{instance_id}",
            404,
        )
        assert isinstance(line["ms"], float)
        assert line["ms"] >= 0

    async def test_a_refused_request_is_logged_too(
        self, client: AsyncClient, access: _Recorder
    ) -> None:
        await client.get("/v1/instances?name=%00")
        assert [(line["route"], line["status"]) for line in access.lines] == [(None, 422)]
