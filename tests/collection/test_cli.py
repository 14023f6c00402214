"""`dbsize collect` and `dbsize rotate-secrets`."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from httpx import AsyncClient

from dbsize.cli_common import CliError
from dbsize.collection.cli import run_collect
from dbsize.config import Settings
from tests.collection.helpers import pg_instance, samples
from tests.collection.servers import closed_port, pg_databases
from tests.jobs.conftest import start_worker, stop_worker
from tests.test_cli import run_dbsize


class TestCollectCommand:
    async def test_wait_shows_each_database_size_and_exits_zero_when_every_instance_succeeded(
        self, client: AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        worker, task = await start_worker(settings)
        try:
            async with pg_databases([0]) as pg:
                row = await pg_instance(client, "local-pg")
                status = await run_collect(settings, ["local-pg"], wait=True)
                expected = await pg.sizes()
        finally:
            await stop_worker(worker, task)
        out, err = capsys.readouterr()
        assert status == 0
        assert '"status": "queued"' in out
        assert "succeeded" in err
        assert pg.names[0] in err
        collected = await samples(client, row["id"])
        assert collected[pg.names[0]] == round(expected[pg.names[0]] / 1048576, 3)
        assert str(collected[pg.names[0]]) in err

    async def test_wait_exits_one_and_shows_why_when_an_instance_failed(
        self, client: AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        worker, task = await start_worker(settings)
        try:
            await pg_instance(client, "closed", port=closed_port())
            status = await run_collect(settings, [], wait=True)
        finally:
            await stop_worker(worker, task)
        err = capsys.readouterr().err
        assert status == 1
        assert "failed" in err
        assert "closed" in err

    async def test_unknown_instance_name_is_refused(self, settings: Settings) -> None:
        with pytest.raises(CliError, match=r"^no instance is named 'nope'$"):
            await run_collect(settings, ["nope"], wait=False)

    def test_command_line_unknown_instance_is_one_line(self, settings: Settings) -> None:
        result = run_dbsize(
            "collect",
            "--instance",
            "nope",
            env={
                "DBSIZE_DATABASE_URL": settings.database_url,
                "DBSIZE_REDIS_URL": settings.redis_url,
                "DBSIZE_QUEUE_NAME": settings.queue_name,
            },
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip() == "dbsize: no instance is named 'nope'"


class TestRotateSecretsCommand:
    async def test_reencrypts_under_the_new_first_key(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        from dbsize.db import create_engine
        from dbsize.secret_box import SecretBox
        from tests.test_instance_connection import stored_password

        row = await pg_instance(client, "rotated", password="pw-1")
        old = settings.secret_key.get_secret_value() if settings.secret_key else ""
        new = Fernet.generate_key().decode()
        result = run_dbsize(
            "rotate-secrets",
            env={
                "DBSIZE_DATABASE_URL": settings.database_url,
                "DBSIZE_SECRET_KEY": f"{new},{old}",
            },
        )
        assert result.returncode == 0, result.stderr
        assert "re-encrypted 1 instance password" in result.stderr
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            token = await stored_password(engine, row["id"])
        finally:
            await engine.dispose()
        assert SecretBox(new).decrypt(token or "") == "pw-1"
