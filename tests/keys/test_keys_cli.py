"""`dbsize keys create|list|revoke` on the database directly."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from dbsize.keys.tokens import key_hash


def dbsize(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DBSIZE_")}
    return subprocess.run(
        [sys.executable, "-m", "dbsize", "keys", *args],
        env=env | {"DBSIZE_DATABASE_URL": settings.database_url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestKeysCommands:
    async def test_create_prints_the_key_alone_then_list_and_revoke(
        self, settings: Settings, engine: AsyncEngine
    ) -> None:
        created = dbsize(settings, "create", "--scope", "write", "--name", "collector-eu")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        assert created.stdout == key + "\n"
        assert key.startswith("dbs_")
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT public_id, name, scope FROM api_keys WHERE key_hash = :h"),
                    {"h": key_hash(key)},
                )
            ).one()
        assert (row.name, row.scope) == ("collector-eu", "write")
        assert created.stderr == f"dbsize: created write key {row.public_id} (collector-eu)\n"

        listed = dbsize(settings, "list")
        assert listed.returncode == 0, listed.stderr
        assert row.public_id in listed.stderr
        assert "collector-eu" in listed.stderr
        assert key not in listed.stdout + listed.stderr

        revoked = dbsize(settings, "revoke", row.public_id)
        assert revoked.returncode == 0, revoked.stderr
        again = dbsize(settings, "revoke", row.public_id)
        assert again.returncode == 1
        assert again.stderr == f"dbsize: API key {row.public_id} is already revoked\n"

    def test_unknown_scope_is_a_usage_error(self, settings: Settings) -> None:
        result = dbsize(settings, "create", "--scope", "root", "--name", "x")
        assert result.returncode == 2
        assert result.stderr.startswith("dbsize: usage: ")
