"""Liveness, readiness, and how the API answers when a backing server or a route is missing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.config import Settings
from dbsize.main import create_app
from tests.conftest import bearer
from tests.worker.test_liveness import heartbeat

CLOSED_REDIS = "redis://127.0.0.1:1/0"
CLOSED_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/dbsize"


UNCHECKED_KEY = "dbs_" + "0" * 43


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[AsyncClient]:
    """A client on an app of its own, lifespan included (like conftest's ``app`` fixture).

    ``raise_app_exceptions`` stays on: an error that escaped the handlers would fail the test
    instead of hiding behind a 500.
    """
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client,
    ):
        # A well-formed key: checking it needs PostgreSQL, like the route behind it.
        client.headers.update(bearer(UNCHECKED_KEY))
        yield client


def assert_problem(response: Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    return body


class TestHealthz:
    async def test_answers_ok(self, client: AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_answers_even_when_both_servers_are_down(self, settings: Settings) -> None:
        down = settings.model_copy(
            update={"database_url": CLOSED_POSTGRES, "redis_url": CLOSED_REDIS}
        )
        async with client_for(down) as client:
            response = await client.get("/healthz")
        assert response.status_code == 200


class TestReadyz:
    async def test_ready_on_the_real_servers_with_a_worker_heartbeat(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await heartbeat(sessionmaker)
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {
            "status": "ready",
            "checks": {"postgres": "ok", "redis": "ok", "worker": "ok"},
        }

    async def test_unreachable_redis_is_503_problem_with_retry_after(
        self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await heartbeat(sessionmaker)
        async with client_for(settings.model_copy(update={"redis_url": CLOSED_REDIS})) as client:
            response = await client.get("/readyz")
        body = assert_problem(response, 503)
        assert int(response.headers["retry-after"]) > 0
        assert body["detail"] == "not reachable: redis"
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["postgres"] == "ok"
        assert checks["redis"] != "ok"

    async def test_unreachable_postgres_is_503_problem_with_retry_after(
        self, settings: Settings
    ) -> None:
        update = {"database_url": CLOSED_POSTGRES}
        async with client_for(settings.model_copy(update=update)) as client:
            response = await client.get("/readyz")
        body = assert_problem(response, 503)
        assert "retry-after" in response.headers
        assert body["detail"] == "not reachable: postgres"
        assert body["checks"]["worker"] == "unknown (PostgreSQL is not reachable)"  # type: ignore[index]


class TestDependencyOutage:
    async def test_read_while_postgres_is_down_is_503_problem(self, settings: Settings) -> None:
        update = {"database_url": CLOSED_POSTGRES}
        async with client_for(settings.model_copy(update=update)) as client:
            response = await client.get("/v1/instances")
        body = assert_problem(response, 503)
        assert int(response.headers["retry-after"]) > 0
        assert body["type"] == "/problems/service-unavailable"
        assert "PostgreSQL" in str(body["detail"])

    async def test_write_while_postgres_is_down_is_503_problem(self, settings: Settings) -> None:
        update = {"database_url": CLOSED_POSTGRES}
        async with client_for(settings.model_copy(update=update)) as client:
            response = await client.post(
                "/v1/instances", json={"name": "pg-01", "db_type": "postgresql"}
            )
        assert_problem(response, 503)
        assert "retry-after" in response.headers


class TestUnknownRoutes:
    async def test_unknown_path_is_404_problem(self, client: AsyncClient) -> None:
        response = await client.get("/v1/no-such-thing")
        body = assert_problem(response, 404)
        assert body["instance"] == "/v1/no-such-thing"

    async def test_wrong_method_is_405_problem_with_allow(self, client: AsyncClient) -> None:
        response = await client.delete("/healthz")
        assert_problem(response, 405)
        assert "GET" in response.headers["allow"]
