"""Connection settings on instances: the password is write-only and encrypted at rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.instances.service import InstanceService
from dbsize.main import create_app
from dbsize.secret_box import SecretBox, SecretUnreadable, ensure_local_key
from tests.conftest import bearer
from tests.factories import create_instance

PASSWORD = "s3cret-Pa55-never-shown"


async def stored_password(engine: AsyncEngine, instance_id: int) -> str | None:
    async with engine.connect() as conn:
        value: str | None = await conn.scalar(
            text("SELECT password_encrypted FROM instances WHERE id = :id"), {"id": instance_id}
        )
        return value


@pytest.fixture
async def keyless_client(settings: Settings, admin_key: str) -> AsyncIterator[AsyncClient]:
    """Without DBSIZE_SECRET_KEY (the API key is an admin's, as in ``client``)."""
    app: FastAPI = create_app(settings.model_copy(update={"secret_key": None}))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(
            transport=ASGITransport(app=app), base_url="http://test", headers=bearer(admin_key)
        ) as client,
    ):
        yield client


class TestConnectionSettings:
    async def test_defaults_are_returned_without_a_password(self, client: AsyncClient) -> None:
        body = await create_instance(client, "pg-defaults", host="127.0.0.1", port=5432)
        assert {
            key: body[key]
            for key in (
                "username",
                "password_set",
                "connect_database",
                "tls_mode",
                "connect_timeout_seconds",
                "statement_timeout_seconds",
                "collect",
            )
        } == {
            "username": None,
            "password_set": False,
            "connect_database": None,
            "tls_mode": "prefer",
            "connect_timeout_seconds": 10,
            "statement_timeout_seconds": 300,
            "collect": True,
        }
        assert "password" not in body

    async def test_password_is_stored_encrypted_and_never_returned(
        self, client: AsyncClient, engine: AsyncEngine, settings: Settings
    ) -> None:
        body = await create_instance(client, "pg-secret", username="monitor", password=PASSWORD)
        assert body["password_set"] is True
        assert PASSWORD not in str(body)
        stored = await stored_password(engine, body["id"])
        assert stored is not None
        assert PASSWORD not in stored
        assert SecretBox.from_settings(settings).decrypt(stored) == PASSWORD
        for response in (
            await client.get(f"/v1/instances/{body['id']}"),
            await client.get("/v1/instances"),
        ):
            assert PASSWORD not in response.text
            assert "password_encrypted" not in response.text

    async def test_patch_null_removes_the_password(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        body = await create_instance(client, "pg-clear", password=PASSWORD)
        response = await client.patch(f"/v1/instances/{body['id']}", json={"password": None})
        assert response.status_code == 200
        assert response.json()["password_set"] is False
        assert await stored_password(engine, body["id"]) is None

    async def test_patch_without_password_keeps_it(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        body = await create_instance(client, "pg-keep", password=PASSWORD)
        before = await stored_password(engine, body["id"])
        response = await client.patch(f"/v1/instances/{body['id']}", json={"port": 6543})
        assert response.json()["password_set"] is True
        assert await stored_password(engine, body["id"]) == before

    async def test_null_for_a_required_setting_is_422(self, client: AsyncClient) -> None:
        body = await create_instance(client, "pg-null")
        response = await client.patch(f"/v1/instances/{body['id']}", json={"tls_mode": None})
        assert response.status_code == 422
        assert "tls_mode cannot be null" in response.json()["errors"][0]["detail"]

    async def test_without_secret_key_a_password_is_refused(
        self, keyless_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        response = await keyless_client.post(
            "/v1/instances", json={"name": "pg-nokey", "db_type": "postgresql", "password": "x"}
        )
        assert response.status_code == 422
        problem = response.json()
        assert "DBSIZE_SECRET_KEY" in problem["detail"]
        assert problem["errors"][0]["pointer"] == "#/body/password"
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM instances")) == 0

    async def test_without_secret_key_an_instance_without_password_is_fine(
        self, keyless_client: AsyncClient
    ) -> None:
        response = await keyless_client.post(
            "/v1/instances", json={"name": "pg-nopass", "db_type": "postgresql"}
        )
        assert response.status_code == 201

    async def test_password_is_write_only_in_the_openapi_document(
        self, client: AsyncClient
    ) -> None:
        schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
        assert schemas["InstanceCreate"]["properties"]["password"]["writeOnly"] is True
        assert "password" not in schemas["InstanceRead"]["properties"]

    async def test_database_refuses_a_plaintext_password(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        body = await create_instance(client, "pg-plain")
        async with engine.begin() as conn:
            with pytest.raises(Exception, match="ck_instances_password_is_token"):
                await conn.execute(
                    text("UPDATE instances SET password_encrypted = 'hunter2' WHERE id = :id"),
                    {"id": body["id"]},
                )


class TestRotateSecrets:
    async def test_rotation_reencrypts_every_stored_password_under_the_new_key(
        self, client: AsyncClient, engine: AsyncEngine, sessionmaker: Any, settings: Settings
    ) -> None:
        first = await create_instance(client, "pg-rot-1", password=PASSWORD)
        second = await create_instance(client, "pg-rot-2", password="other")
        await create_instance(client, "pg-rot-none")
        old_key = settings.secret_key.get_secret_value() if settings.secret_key else ""
        new_key = Fernet.generate_key().decode()
        async with session_scope(sessionmaker) as session:
            count = await InstanceService(
                session, SecretBox(f"{new_key},{old_key}")
            ).rotate_secrets()
        assert count == 2
        only_new = SecretBox(new_key)
        assert only_new.decrypt(await stored_password(engine, first["id"]) or "") == PASSWORD
        assert only_new.decrypt(await stored_password(engine, second["id"]) or "") == "other"


class TestSecretBox:
    def test_rotation_keeps_old_secrets_readable(self) -> None:
        old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        token = SecretBox(old_key).encrypt(PASSWORD)
        rotated_box = SecretBox(f"{new_key},{old_key}")
        assert rotated_box.decrypt(token) == PASSWORD
        rotated = rotated_box.rotate(token)
        assert SecretBox(new_key).decrypt(rotated) == PASSWORD
        with pytest.raises(SecretUnreadable):
            SecretBox(new_key).decrypt(token)

    def test_invalid_key_is_refused_and_the_cli_does_not_echo_it(self) -> None:
        from pydantic import ValidationError

        from dbsize.cli_common import describe_invalid

        good = Fernet.generate_key().decode()
        with pytest.raises(ValidationError, match="key 2 is not a Fernet key") as caught:
            Settings(secret_key=f"{good},not-a-key")
        line = describe_invalid(caught.value)
        assert line.startswith("invalid DBSIZE_SECRET_KEY: ")
        assert good not in line
        assert "not-a-key" not in line

    def test_local_key_is_generated_once(self, tmp_path: object) -> None:
        folder = f"{tmp_path}/var"
        key, created = ensure_local_key(folder)
        again, created_again = ensure_local_key(folder)
        assert (created, created_again) == (True, False)
        assert again == key
        assert SecretBox(key).decrypt(SecretBox(key).encrypt("x")) == "x"
