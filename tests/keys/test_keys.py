"""Keys: shown once, stored hashed, revocable, last-used time, the 401/403 problems, public
reads, and a key never in an error body or a log line."""

from __future__ import annotations

import base64
import logging

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.keys.service import KeyService
from dbsize.keys.tokens import KEY_PREFIX, Scope, allows, key_hash, looks_like_key, new_key
from dbsize.main import create_app
from tests.conftest import bearer, make_key


class TestTokens:
    def test_key_is_prefix_and_32_random_bytes(self) -> None:
        key = new_key()
        assert key.startswith(KEY_PREFIX)
        assert len(base64.urlsafe_b64decode(key.removeprefix(KEY_PREFIX) + "=")) == 32
        assert looks_like_key(key)
        assert new_key() != key

    def test_hash_is_sha256_hex(self) -> None:
        assert key_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

    @pytest.mark.parametrize(
        ("granted", "required", "allowed"),
        [
            (Scope.read, Scope.read, True),
            (Scope.read, Scope.write, False),
            (Scope.read, Scope.admin, False),
            (Scope.write, Scope.read, True),
            (Scope.write, Scope.write, True),
            (Scope.write, Scope.admin, False),
            (Scope.admin, Scope.read, True),
            (Scope.admin, Scope.write, True),
            (Scope.admin, Scope.admin, True),
        ],
    )
    def test_scope_includes_the_narrower_ones(
        self, granted: Scope, required: Scope, allowed: bool
    ) -> None:
        assert allows(granted, required) is allowed

    @pytest.mark.parametrize("value", ["", "dbs_short", "Bearer dbs_" + "a" * 43, "x" * 47])
    def test_malformed_values_are_not_keys(self, value: str) -> None:
        assert not looks_like_key(value)


class TestKeysApi:
    async def test_create_shows_the_key_once_and_stores_only_its_hash(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        response = await client.post("/v1/keys", json={"name": "collector-eu", "scope": "write"})
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["key"].startswith("dbs_")
        assert response.headers["location"] == f"/v1/keys/{created['id']}"
        assert response.headers["cache-control"] == "no-store"
        listed = (await client.get("/v1/keys")).json()
        mine = [k for k in listed if k["id"] == created["id"]]
        assert mine == [{k: v for k, v in created.items() if k != "key"}]
        async with engine.connect() as conn:
            stored = (
                await conn.execute(
                    text("SELECT key_hash, scope FROM api_keys WHERE public_id = :id"),
                    {"id": created["id"]},
                )
            ).one()
            dump = await conn.scalar(text("SELECT string_agg(t::text, ' ') FROM api_keys t"))
        assert stored.key_hash == key_hash(created["key"])
        assert stored.scope == "write"
        assert created["key"] not in dump

    async def test_new_key_works_with_its_scope_and_records_last_use(
        self, client: AsyncClient, anon_client: AsyncClient
    ) -> None:
        created = (await client.post("/v1/keys", json={"name": "ro", "scope": "read"})).json()
        assert created["last_used_at"] is None
        as_reader = bearer(created["key"])
        assert (await anon_client.get("/v1/instances", headers=as_reader)).status_code == 200
        write = await anon_client.post(
            "/v1/instances", json={"name": "pg-01", "db_type": "postgresql"}, headers=as_reader
        )
        assert write.status_code == 403
        assert write.headers["www-authenticate"] == (
            'Bearer realm="dbsize", error="insufficient_scope", scope="write"'
        )
        assert write.json()["detail"] == (
            f"this route needs a key with scope 'write'; key {created['id']} has 'read'"
        )
        listed = {k["id"]: k for k in (await client.get("/v1/keys")).json()}
        assert listed[created["id"]]["last_used_at"] is not None

    async def test_revoked_key_is_refused_from_the_next_request(
        self, client: AsyncClient, anon_client: AsyncClient
    ) -> None:
        created = (await client.post("/v1/keys", json={"name": "w", "scope": "write"})).json()
        headers = bearer(created["key"])
        assert (await anon_client.get("/v1/instances", headers=headers)).status_code == 200
        assert (await client.delete(f"/v1/keys/{created['id']}")).status_code == 204
        refused = await anon_client.get("/v1/instances", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="dbsize", error="invalid_token"'
        again = await client.delete(f"/v1/keys/{created['id']}")
        assert again.status_code == 409
        assert [k["id"] for k in (await client.get("/v1/keys")).json()] == [
            k["id"] for k in (await client.get("/v1/keys")).json() if k["id"] != created["id"]
        ]
        with_revoked = (await client.get("/v1/keys?include_revoked=true")).json()
        assert [k["revoked_at"] is not None for k in with_revoked if k["id"] == created["id"]] == [
            True
        ]

    async def test_last_active_admin_key_cannot_be_revoked(self, client: AsyncClient) -> None:
        (admin,) = (await client.get("/v1/keys")).json()
        response = await client.delete(f"/v1/keys/{admin['id']}")
        assert response.status_code == 409
        assert "last active admin key" in response.json()["detail"]
        second = (await client.post("/v1/keys", json={"name": "a2", "scope": "admin"})).json()
        assert (await client.delete(f"/v1/keys/{admin['id']}")).status_code == 204
        as_second = bearer(second["key"])
        assert (await client.get("/v1/keys", headers=as_second)).status_code == 200

    async def test_unknown_key_id_is_404(self, client: AsyncClient) -> None:
        response = await client.delete("/v1/keys/nosuchkey")
        assert response.status_code == 404
        assert response.json()["detail"] == "API key nosuchkey does not exist"

    async def test_blank_name_and_unknown_scope_are_422(self, client: AsyncClient) -> None:
        response = await client.post("/v1/keys", json={"name": "  ", "scope": "root"})
        assert response.status_code == 422
        pointers = sorted(e["pointer"] for e in response.json()["errors"])
        assert pointers == ["#/body/name", "#/body/scope"]


class TestRefusals:
    async def test_missing_key_is_401_problem_with_a_bearer_challenge(
        self, anon_client: AsyncClient
    ) -> None:
        response = await anon_client.post(
            "/v1/instances", json={"name": "pg-01", "db_type": "postgresql"}
        )
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == 'Bearer realm="dbsize"'
        assert response.json() == {
            "type": "/problems/unauthorized",
            "title": "Unauthorized",
            "status": 401,
            "detail": "this route needs an API key: send `Authorization: Bearer <key>`",
            "instance": "/v1/instances",
        }

    async def test_a_wrong_key_never_appears_in_the_body_or_the_logs(
        self, anon_client: AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        wrong = new_key()
        caplog.set_level(logging.DEBUG)
        response = await anon_client.get("/v1/instances", headers=bearer(wrong))
        assert response.status_code == 401
        assert wrong not in response.text
        assert wrong[4:20] not in caplog.text
        assert all(wrong not in str(record.__dict__) for record in caplog.records)

    async def test_a_non_bearer_authorization_is_a_missing_key(
        self, anon_client: AsyncClient, admin_key: str
    ) -> None:
        response = await anon_client.get("/v1/instances", headers={"Authorization": admin_key})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="dbsize"'


class TestPublicReads:
    async def test_reads_need_no_key_but_writes_still_do(
        self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        app: FastAPI = create_app(settings.model_copy(update={"public_reads": True}))
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as anon,
        ):
            assert (await anon.get("/v1/instances")).status_code == 200
            write = await anon.post("/v1/instances", json={"name": "p", "db_type": "mysql"})
            assert write.status_code == 401
            assert (await anon.get("/v1/keys")).status_code == 401
            wrong = await anon.get("/v1/instances", headers=bearer(new_key()))
            assert wrong.status_code == 401
            reader = await make_key(sessionmaker, Scope.read)
            assert (await anon.get("/v1/instances", headers=bearer(reader))).status_code == 200


class TestFirstAdminKey:
    async def test_created_only_when_no_key_ever_existed(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with session_scope(sessionmaker) as session:
            first = await KeyService(session).create_first_admin()
        assert first is not None
        assert first.record.scope == "admin"
        assert first.record.name == "first-admin"
        second = await make_key(sessionmaker, Scope.admin)
        async with session_scope(sessionmaker) as session:
            await KeyService(session).revoke(first.record.public_id)
        async with session_scope(sessionmaker) as session:
            assert await KeyService(session).create_first_admin() is None
        assert second.startswith("dbs_")
