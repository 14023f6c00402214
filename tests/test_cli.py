"""The ``dbsize`` command: one-line failures, the embedded fallback, and ``dbsize up`` for real."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
import redis
import typer
import typer.core
import typer.main
import yaml
from alembic.script import ScriptDirectory
from arq.connections import create_pool
from sqlalchemy.engine import make_url

from dbsize import cli, cli_common
from dbsize.config import Settings, normalise_database_url
from dbsize.connectivity import check_postgres, check_redis
from dbsize.embedded import EmbeddedError, EmbeddedServers, should_embed
from dbsize.migrate import alembic_config, drop_database
from dbsize.redis import redis_settings
from tests.conftest import REDIS_URL, SERVER_URL

CLOSED_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/dbsize"
CLOSED_REDIS = "redis://127.0.0.1:1/0"


def run_dbsize(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``dbsize ARGS`` in a child process whose only DBSIZE_* variables are ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DBSIZE_")}
    return subprocess.run(
        [sys.executable, "-m", "dbsize", *args],
        env=clean | (env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dbsize: ")
    return lines[0]


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class TestUnreachableServers:
    def test_migrate_names_database_url(self) -> None:
        result = run_dbsize("migrate", env={"DBSIZE_DATABASE_URL": CLOSED_POSTGRES})
        line = one_error_line(result)
        assert "DBSIZE_DATABASE_URL" in line
        assert "127.0.0.1:1" in line

    def test_worker_names_redis_url(self, database_url: str) -> None:
        env = {"DBSIZE_DATABASE_URL": database_url, "DBSIZE_REDIS_URL": CLOSED_REDIS}
        line = one_error_line(run_dbsize("worker", env=env))
        assert "DBSIZE_REDIS_URL" in line
        assert "127.0.0.1:1" in line

    def test_redis_password_is_not_printed(self, database_url: str) -> None:
        env = {
            "DBSIZE_DATABASE_URL": database_url,
            "DBSIZE_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0",
        }
        line = one_error_line(run_dbsize("worker", env=env))
        assert "hunter2" not in line

    def test_up_with_an_explicit_url_never_falls_back_to_embedded(self, tmp_path: Path) -> None:
        result = run_dbsize("up", env={"DBSIZE_DATABASE_URL": CLOSED_POSTGRES}, cwd=tmp_path)
        assert "DBSIZE_DATABASE_URL" in one_error_line(result)
        assert not (tmp_path / "var").exists()


class TestInvalidSettings:
    def test_unknown_timezone_is_one_line(self) -> None:
        line = one_error_line(run_dbsize("migrate", env={"DBSIZE_TIMEZONE": "Mars/Olympus"}))
        assert "DBSIZE_TIMEZONE" in line
        assert "Mars/Olympus" in line

    def test_malformed_timezone_is_one_line(self) -> None:
        line = one_error_line(run_dbsize("migrate", env={"DBSIZE_TIMEZONE": "../etc"}))
        assert "DBSIZE_TIMEZONE" in line

    def test_non_numeric_value_names_the_variable(self) -> None:
        line = one_error_line(run_dbsize("migrate", env={"DBSIZE_JOB_LEASE_SECONDS": "soon"}))
        assert "DBSIZE_JOB_LEASE_SECONDS='soon'" in line


def _database_exists(name: str) -> bool:
    async def query() -> bool:
        conn = await asyncpg.connect(
            make_url(SERVER_URL).set(drivername="postgresql").render_as_string(False)
        )
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
        finally:
            await conn.close()

    return asyncio.run(query())


@pytest.fixture
def unused_database_url() -> Iterator[tuple[str, str]]:
    """A URL on the real server naming a database that does not exist (and must not appear)."""
    name = f"dbsize_cli_{uuid.uuid4().hex[:10]}"
    yield make_url(SERVER_URL).set(database=name).render_as_string(False), name
    assert not _database_exists(name), f"the command created database {name}"


class TestUsageErrors:
    """A wrong command line: one line naming the problem, exit status 2, nothing created."""

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (
                ["serve", "--port", "70000"],
                "dbsize: usage: Invalid value for '--port': Input should be less than or equal "
                "to 65535; see dbsize serve --help",
            ),
            (
                ["up", "--port", "0"],
                "dbsize: usage: Invalid value for '--port': Input should be greater than or "
                "equal to 1; see dbsize up --help",
            ),
            (
                ["demo", "--instances", "-1"],
                "dbsize: usage: Invalid value for '--instances': Input should be greater than or "
                "equal to 1; see dbsize demo --help",
            ),
            (
                ["demo", "--days", "0"],
                "dbsize: usage: Invalid value for '--days': Input should be greater than or "
                "equal to 1; see dbsize demo --help",
            ),
            (
                ["aggregate", "--as-of", "yesterday"],
                "dbsize: usage: Invalid value for '--as-of': 'yesterday' is not a date "
                "(YYYY-MM-DD); see dbsize aggregate --help",
            ),
            (
                ["aggregate", "--instance-ids", "1,x"],
                "dbsize: usage: Invalid value for '--instance-ids': instance ids are integers; "
                "see dbsize aggregate --help",
            ),
            (["frobnicate"], "dbsize: usage: No such command 'frobnicate'; see dbsize --help"),
            (
                ["migrate", "now"],
                "dbsize: usage: Got unexpected extra argument(s) (now); see dbsize migrate --help",
            ),
        ],
    )
    def test_bad_argument_is_one_line_exit_two_and_creates_nothing(
        self, args: list[str], expected: str, unused_database_url: tuple[str, str]
    ) -> None:
        url, _ = unused_database_url
        result = run_dbsize(*args, env={"DBSIZE_DATABASE_URL": url})
        assert one_error_line(result, status=2) == expected
        assert result.stdout == ""

    def test_no_command_prints_the_help_and_exits_two(self) -> None:
        result = run_dbsize()
        assert result.returncode == 2
        assert "aggregate" in result.stdout
        assert result.stderr == ""

    def test_invalid_job_request_is_refused_before_any_server_is_asked(self) -> None:
        result = run_dbsize(
            "aggregate",
            "--start",
            "2026-02-01",
            "--end",
            "2026-01-01",
            env={"DBSIZE_DATABASE_URL": CLOSED_POSTGRES},
        )
        line = one_error_line(result)
        assert line == "dbsize: invalid job request: start must not be after end"

    def test_unknown_period_names_the_valid_ones(self) -> None:
        result = run_dbsize("aggregate", "--periods", "daily,hourly")
        assert one_error_line(result) == (
            "dbsize: invalid job request: unknown period 'hourly'; "
            "use daily, monthly, quarterly, weekly"
        )


class TestCommandShape:
    def test_every_option_of_every_command_has_a_help_line(self) -> None:
        group = typer.main.get_command(cli.app)
        assert isinstance(group, typer.core.TyperGroup)
        missing = [
            f"{name} {param.name}"
            for name, command in group.commands.items()
            for param in command.params
            if isinstance(param, typer.core.TyperOption) and not param.help
        ]
        assert missing == []
        assert sorted(group.commands) == sorted(
            [
                "aggregate",
                "collect",
                "demo",
                "forecast",
                "freshness",
                "keys",
                "migrate",
                "openapi",
                "rotate-secrets",
                "serve",
                "top",
                "up",
                "worker",
            ]
        )

    def test_an_unexpected_error_is_one_line_exit_one(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        broken = typer.Typer()

        @broken.command()
        def explode() -> None:
            raise RuntimeError("first line\nsecond line")

        @broken.command()
        def other() -> None:  # two commands, so the group dispatches by name
            raise cli_common.CliError("not reached")

        assert cli.run(broken, ["explode"]) == 1
        err = capsys.readouterr().err
        assert err == "dbsize: unexpected error: RuntimeError: first line second line\n"

    def test_ctrl_c_exits_130_quietly(self, capsys: pytest.CaptureFixture[str]) -> None:
        broken = typer.Typer()

        @broken.command()
        def interrupted() -> None:
            raise KeyboardInterrupt

        @broken.command()
        def other() -> None:
            raise cli_common.CliError("not reached")

        assert cli.run(broken, ["interrupted"]) == 130
        assert "Traceback" not in capsys.readouterr().err


class TestOpenapiCommand:
    def test_prints_the_yaml_document(self) -> None:
        result = run_dbsize("openapi")
        assert result.returncode == 0, result.stderr
        document = yaml.safe_load(result.stdout)
        assert document["info"]["title"] == "dbsize"
        assert "/readyz" in document["paths"]


def _unconfigured(database_url: str, redis_url: str) -> Settings:
    """Settings whose URLs count as defaults (not set by the operator)."""
    return Settings.model_construct(
        _fields_set=set(), database_url=database_url, redis_url=redis_url
    )


class TestShouldEmbed:
    def test_false_when_database_url_is_set(self) -> None:
        assert not should_embed(Settings(database_url=CLOSED_POSTGRES, redis_url=CLOSED_REDIS))

    def test_false_when_redis_url_comes_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DBSIZE_REDIS_URL", CLOSED_REDIS)
        monkeypatch.setenv("DBSIZE_DATABASE_URL", CLOSED_POSTGRES)
        assert not should_embed(Settings())

    def test_true_when_unconfigured_and_neither_server_answers(self) -> None:
        started = time.monotonic()
        assert should_embed(_unconfigured(CLOSED_POSTGRES, CLOSED_REDIS))
        assert time.monotonic() - started < 3

    def test_false_when_the_default_servers_answer(self) -> None:
        assert not should_embed(_unconfigured(SERVER_URL, REDIS_URL))

    def test_false_when_only_one_server_is_missing(self) -> None:
        assert not should_embed(_unconfigured(SERVER_URL, CLOSED_REDIS))


class TestEmbeddedServers:
    def test_missing_extra_is_named_in_the_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "pgserver", None)  # makes `import pgserver` fail
        with pytest.raises(EmbeddedError, match=r"dbsize\[embedded\]"):
            EmbeddedServers.start(str(tmp_path / "embedded"))
        assert not (tmp_path / "embedded").exists()

    @pytest.mark.slow
    async def test_serve_asyncpg_and_arq_then_stop(self, tmp_path: Path) -> None:
        servers = EmbeddedServers.start(str(tmp_path / "embedded"))
        try:
            env = servers.environ()
            await check_postgres(env["DBSIZE_DATABASE_URL"])
            await check_redis(env["DBSIZE_REDIS_URL"])
            arq = await create_pool(redis_settings(env["DBSIZE_REDIS_URL"]))
            assert await arq.ping()
            await arq.aclose()
        finally:
            servers.stop()
        assert not servers.is_running()
        assert (tmp_path / "embedded" / "postgres" / "PG_VERSION").exists()
        assert (tmp_path / "embedded" / "redis" / "redis.db").exists()

    @pytest.mark.slow
    def test_second_start_on_the_same_folder_is_refused(self, tmp_path: Path) -> None:
        servers = EmbeddedServers.start(str(tmp_path / "embedded"))
        try:
            with pytest.raises(EmbeddedError, match="already using"):
                EmbeddedServers.start(str(tmp_path / "embedded"))
        finally:
            servers.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(base: str, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "dbsize up exited before it was ready"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"dbsize up was not ready within {timeout} s")


def _embedded_pids(root: Path) -> list[int]:
    postgres = int((root / "postgres" / "postmaster.pid").read_text().split()[0])
    redis = int(Path(_redis_registry(root)["pidfile"]).read_text())
    return [postgres, redis]


def _redis_registry(root: Path) -> dict[str, str]:
    registry: dict[str, str] = json.loads((root / "redis" / "redis.db.settings").read_text())
    return registry


def _wait_worker_polling(root: Path, process: subprocess.Popen[str], timeout: float) -> None:
    """arq writes ``<queue>:health-check`` once its poll loop runs: the worker really works."""
    client = redis.Redis(unix_socket_path=_redis_registry(root)["unixsocket"])
    key = Settings.model_construct().queue_name + ":health-check"
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert process.poll() is None, "dbsize up exited: did the worker die? see its log"
            with contextlib.suppress(redis.ConnectionError):  # the server stops as `up` exits
                if client.exists(key):
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"the worker did not start polling within {timeout} s")
            time.sleep(0.2)
    finally:
        client.close()


@pytest.fixture
def up_embedded(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port = _free_port()
    stderr = (tmp_path / "stderr.log").open("w")
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DBSIZE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "dbsize", "up", "--embedded", "--port", str(port)],
        cwd=tmp_path,
        env=clean | {"DBSIZE_LOG_FORMAT": "console", "DBSIZE_CRON_ENABLED": "false"},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        start_new_session=True,  # so a failed test can end the whole tree
    )
    yield process, f"http://127.0.0.1:{port}", tmp_path
    if process.poll() is None:  # the test failed half-way: stop it the way an operator would
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stderr.close()


class TestUpEmbedded:
    @pytest.mark.slow
    def test_serves_api_and_worker_then_sigterm_stops_everything(
        self, up_embedded: tuple[subprocess.Popen[str], str, Path]
    ) -> None:
        process, base, cwd = up_embedded
        root = cwd / "var" / "embedded"
        _wait_ready(base, process, timeout=90)
        _wait_worker_polling(root, process, timeout=30)
        log = (cwd / "stderr.log").read_text()
        keys = re.findall(r"^    (dbs_\S+)$", log, flags=re.MULTILINE)
        assert len(keys) == 1, log
        assert "Authorize button of http://127.0.0.1" in log
        created = httpx.post(  # a password needs the key `up` generated for this newcomer
            f"{base}/v1/instances",
            json={"name": "pg-01", "db_type": "postgresql", "password": "pw"},
            headers={"Authorization": f"Bearer {keys[0]}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        pids = _embedded_pids(root)
        worker_pids = [child.pid for child in psutil.Process(process.pid).children()]
        assert worker_pids, "the worker child is not running"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM

        assert not any(alive(pid) for pid in pids + worker_pids)
        log = (cwd / "stderr.log").read_text()
        embedded_lines = [line for line in log.splitlines() if "running embedded" in line]
        assert len(embedded_lines) == 1, log
        key_lines = [line for line in log.splitlines() if "generated DBSIZE_SECRET_KEY" in line]
        assert len(key_lines) == 1, log
        assert (cwd / "var" / "secret_key").read_text().strip() not in log
        assert str(root) in embedded_lines[0]


class TestDatabaseUrl:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("postgres://u:p@db:5433/x", "postgresql+asyncpg://u:p@db:5433/x"),
            ("postgresql://u@db/x", "postgresql+asyncpg://u@db/x"),
            ("postgresql+asyncpg://u@db/x", "postgresql+asyncpg://u@db/x"),
            ("postgresql://u@/x?host=/run/pg", "postgresql+asyncpg://u@/x?host=%2Frun%2Fpg"),
        ],
    )
    def test_postgres_urls_mean_asyncpg(self, given: str, expected: str) -> None:
        assert normalise_database_url(given) == expected

    @pytest.mark.parametrize(
        ("given", "reason"),
        [
            ("mysql://root@127.0.0.1/x", "must be a PostgreSQL URL"),
            ("postgresql+psycopg://u@db/x", "must be a PostgreSQL URL"),
            ("db.example.com", "is not a database URL"),
            ("postgresql://u@db", "names no database"),
        ],
    )
    def test_anything_else_is_refused(self, given: str, reason: str) -> None:
        with pytest.raises(ValueError, match=reason):
            normalise_database_url(given)


class TestBadSettingsCreateNothing:
    def test_non_postgres_url_is_one_line_and_creates_nothing(
        self, unused_database_url: tuple[str, str]
    ) -> None:
        _, name = unused_database_url
        url = f"mysql://root@127.0.0.1:3306/{name}"
        line = one_error_line(run_dbsize("migrate", env={"DBSIZE_DATABASE_URL": url}))
        assert line == (
            "dbsize: invalid DBSIZE_DATABASE_URL: must be a PostgreSQL URL (postgresql://, "
            "postgres:// or postgresql+asyncpg://), not mysql://; "
            "e.g. postgresql://user@127.0.0.1:5432/dbsize"
        )

    def test_bad_redis_url_is_one_line(self) -> None:
        line = one_error_line(
            run_dbsize("worker", env={"DBSIZE_REDIS_URL": "http://127.0.0.1:6379"})
        )
        assert line == (
            "dbsize: invalid DBSIZE_REDIS_URL: must be a redis://, rediss:// or unix:// URL, "
            "e.g. redis://127.0.0.1:6379/0"
        )

    def test_demo_refuses_bad_counts_before_reading_settings(self) -> None:
        env = {"DBSIZE_DATABASE_URL": "mysql://root@127.0.0.1/x"}
        result = run_dbsize("demo", "--instances", "-1", env=env)
        assert result.returncode == 2
        assert "--instances" in one_error_line(result, status=2)


class TestMigrate:
    def test_plain_postgres_url_migrates_and_says_what_it_did(
        self, unused_database_url: tuple[str, str]
    ) -> None:
        _, name = unused_database_url
        url = make_url(SERVER_URL).set(drivername="postgres", database=name)
        env = {"DBSIZE_DATABASE_URL": url.render_as_string(False)}
        try:
            first = run_dbsize("migrate", env=env)
            assert first.returncode == 0, first.stderr
            heads = [s.revision for s in _scripts().walk_revisions()]
            head = heads[0]
            applied = ", ".join(reversed(heads))
            assert first.stderr == (
                f"dbsize: created database {name}; applied {len(heads)} migrations ({applied}); "
                f"database {name} is at {head}\n"
            )
            again = run_dbsize("migrate", env=env)
            assert again.stderr == (
                f"dbsize: no migration to apply; database {name} is at {head}\n"
            )
        finally:
            asyncio.run(
                drop_database(make_url(SERVER_URL).set(database=name).render_as_string(False))
            )


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(SERVER_URL))
