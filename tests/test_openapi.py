"""The committed documents (``openapi.yaml``, the settings table) must match the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from dbsize.config import Settings
from dbsize.openapi_export import render_openapi

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "openapi.yaml"
OPERATIONS_GUIDE = ROOT / "docs" / "operations.md"

# Non-default values for settings a route could plausibly read; none may change the document.
ODD_ENVIRONMENT = {
    "DBSIZE_DATABASE_URL": "postgresql+asyncpg://someone@db.invalid:6543/elsewhere",
    "DBSIZE_REDIS_URL": "redis://redis.invalid:6380/3",
    "DBSIZE_TIMEZONE": "Pacific/Chatham",
    "DBSIZE_QUEUE_NAME": "another-queue",
    "DBSIZE_MAX_SAMPLES_PER_REQUEST": "7",
    "DBSIZE_LONG_POLL_MAX_SECONDS": "3",
    "DBSIZE_IDEMPOTENCY_KEY_TTL_HOURS": "2",
    "DBSIZE_RETENTION_MONTHS": "6",
    "DBSIZE_TREND_THRESHOLD_PERCENT": "1.5",
}


def _dbsize_openapi(extra_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DBSIZE_")}
    result = subprocess.run(
        [sys.executable, "-m", "dbsize", "openapi"],
        env=env | extra_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestCommittedOpenapi:
    def test_matches_the_code(self) -> None:
        assert COMMITTED.exists(), "openapi.yaml is missing: run `make openapi` and commit it"
        committed = COMMITTED.read_text(encoding="utf-8")
        assert committed == render_openapi(), (
            "openapi.yaml is out of date with the code: run `make openapi` and commit the result"
        )

    def test_is_openapi_3_1_with_the_service_paths(self) -> None:
        document = yaml.safe_load(render_openapi())
        assert document["openapi"].startswith("3.1")
        assert {"/healthz", "/readyz", "/v1/instances"} <= set(document["paths"])


class TestRenderedDocument:
    def test_command_prints_the_same_document(self) -> None:
        assert _dbsize_openapi({}) == render_openapi()

    def test_environment_does_not_change_it(self) -> None:
        assert _dbsize_openapi(ODD_ENVIRONMENT) == render_openapi()


class TestOperationsGuide:
    def test_settings_table_lists_every_setting(self) -> None:
        guide = OPERATIONS_GUIDE.read_text(encoding="utf-8")
        missing = [
            f"DBSIZE_{name.upper()}"
            for name in Settings.model_fields
            if f"`DBSIZE_{name.upper()}`" not in guide
        ]
        assert not missing, f"add {', '.join(missing)} to the settings table in docs/operations.md"
