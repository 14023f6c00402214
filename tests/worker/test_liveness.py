"""Worker heartbeats, /readyz's worker check, `dbsize worker --check`, the backoffs, and
`dbsize up`'s restart of a worker that dies."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.worker.heartbeat import WorkerIdentity, beat, heartbeat_interval, newest_heartbeat
from dbsize.worker.resilient import backoff_seconds
from dbsize.worker.supervisor import WorkerSupervisor, restart_delay


async def heartbeat(
    sessionmaker: async_sessionmaker[AsyncSession], hostname: str | None = None
) -> None:
    identity = WorkerIdentity(hostname or socket.gethostname(), 4242)
    async with session_scope(sessionmaker) as session:
        await beat(session, identity)


class TestBackoffs:
    @pytest.mark.parametrize(
        ("failures", "seconds"), [(1, 0.25), (2, 0.5), (3, 1.0), (5, 4.0), (6, 5.0), (40, 5.0)]
    )
    def test_poll_backoff_doubles_to_five_seconds(self, failures: int, seconds: float) -> None:
        assert backoff_seconds(failures) == seconds

    @pytest.mark.parametrize(
        ("deaths", "seconds"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (20, 30.0)]
    )
    def test_restart_delay_doubles_to_thirty_seconds(self, deaths: int, seconds: float) -> None:
        assert restart_delay(deaths) == seconds

    @pytest.mark.parametrize(("lease", "interval"), [(5, 1.666), (30, 10.0), (60, 10.0), (3, 1.0)])
    def test_heartbeat_is_a_third_of_the_lease_within_1_to_10_s(
        self, lease: int, interval: float
    ) -> None:
        assert heartbeat_interval(lease) == pytest.approx(interval, abs=0.001)


class TestReadiness:
    async def test_not_ready_without_a_worker_heartbeat(self, client: AsyncClient) -> None:
        response = await client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["detail"] == "no worker has heartbeated within the 60 s lease"
        assert body["checks"] == {
            "postgres": "ok",
            "redis": "ok",
            "worker": "no worker has heartbeated within the 60 s lease",
        }
        assert response.headers["retry-after"] == "5"

    async def test_ready_once_a_worker_heartbeats(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await heartbeat(sessionmaker)
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["checks"]["worker"] == "ok"

    async def test_newest_heartbeat_filters_by_host(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await heartbeat(sessionmaker, hostname="elsewhere")
        async with session_scope(sessionmaker) as session:
            assert await newest_heartbeat(session, 60) is not None
            assert await newest_heartbeat(session, 60, hostname="elsewhere") is not None
            assert await newest_heartbeat(session, 60, hostname="nowhere") is None


def _check(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DBSIZE_")}
    return subprocess.run(
        [sys.executable, "-m", "dbsize", "worker", "--check"],
        env=env | {"DBSIZE_DATABASE_URL": settings.database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestWorkerCheck:
    async def test_exits_1_without_a_heartbeat_on_this_host_then_0_with_one(
        self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await heartbeat(sessionmaker, hostname="another-host")
        refused = _check(settings)
        assert refused.returncode == 1
        assert refused.stderr == (
            f"dbsize: no worker on {socket.gethostname()} has heartbeated within the 60 s lease\n"
        )
        await heartbeat(sessionmaker)
        passed = _check(settings)
        assert passed.returncode == 0, passed.stderr
        assert passed.stderr.startswith(f"dbsize: worker on {socket.gethostname()} heartbeated ")


class TestSupervisor:
    def test_a_worker_that_dies_is_restarted_and_the_supervisor_stops_cleanly(self) -> None:
        notes: list[str] = []
        supervisor = WorkerSupervisor(
            [sys.executable, "-c", "import sys; sys.exit(3)"], note=notes.append
        )
        supervisor.start()
        deadline = time.monotonic() + 20
        while supervisor.restarts < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        supervisor.stop()
        assert supervisor.restarts >= 2, notes
        assert notes[0].endswith("exited with code 3; restarting it in 1 s (the API keeps serving)")
        assert notes[1].endswith("exited with code 3; restarting it in 2 s (the API keeps serving)")
