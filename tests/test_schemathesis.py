"""schemathesis against the live API, with data in it: no server error, no schema violation.

The same run as ``st run <url>/openapi.json --phases examples,coverage,fuzzing --checks
not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance``
with a fixed seed and a time budget. It reads the spec the app serves, so every route is fuzzed,
including routes added after this test was written. On failure the message is schemathesis' own
report: the route, the check that failed, the response, and a curl line that reproduces it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from dbsize.config import Settings
from tests.conftest import bearer
from tests.live import LiveServer, live_api, live_worker

SEED = 20261205
MAX_SECONDS = 90
CHECKS = (
    "not_a_server_error,response_schema_conformance,content_type_conformance,"
    "status_code_conformance"
)


def _seed_data(base: str, key: str) -> None:
    """A small fleet with a month of samples and a finished aggregation job."""
    with httpx.Client(base_url=base, timeout=30, headers=bearer(key)) as client:
        for index in range(3):
            created = client.post(
                "/v1/instances",
                json={"name": f"pg-fuzz-{index}", "db_type": "postgresql", "port": 5432},
            )
            assert created.status_code == 201, created.text
        today = date.today()
        samples = [
            {
                "instance_name": f"pg-fuzz-{index}",
                "database_name": f"db{db}",
                "collected_date": (today - timedelta(days=day)).isoformat(),
                "size_mb": 1000 + 10 * day + db,
            }
            for index in range(3)
            for db in range(2)
            for day in range(30)
        ]
        posted = client.post("/v1/size-samples", json={"samples": samples})
        assert posted.status_code == 200, posted.text
        job = client.post("/v1/aggregation-jobs", json={})
        assert job.status_code == 202, job.text
        done = client.get(f"/v1/aggregation-jobs/{job.json()['id']}", params={"wait": 20})
        assert done.json()["done"], done.text


@pytest.fixture
def fuzzed_api(settings: Settings, tmp_path: Path, admin_key: str) -> Iterator[LiveServer]:
    with live_worker(settings, tmp_path), live_api(settings, tmp_path) as server:
        _seed_data(server.url, admin_key)
        yield server


def _report(output: str) -> str:
    """schemathesis' FAILURES section (route, check, response, curl), or all of it."""
    start = output.find("FAILURES")
    return output[start - 40 :] if start >= 0 else output


@pytest.mark.slow
def test_fuzzing_finds_no_server_error_and_no_schema_violation(
    fuzzed_api: LiveServer, tmp_path: Path, admin_key: str
) -> None:
    st = Path(sys.executable).parent / "st"
    result = subprocess.run(
        [
            str(st),
            "run",
            f"{fuzzed_api.url}/openapi.json",
            "--phases=examples,coverage,fuzzing",
            f"--checks={CHECKS}",
            f"--seed={SEED}",
            f"--max-time={MAX_SECONDS}",
            "--workers=1",
            "--request-timeout=10",
            "--no-color",
            f"--header=Authorization: Bearer {admin_key}",
        ],
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS + 120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, _report(result.stdout + result.stderr)
    summary = result.stdout[result.stdout.find("SUMMARY") :]
    print(summary)  # shown with -rP / -s: operations, phases and test cases of this run
    cases = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert cases is not None, summary
    assert cases[1] == cases[2]
