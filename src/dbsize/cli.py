"""The ``dbsize`` command. Every failure ends in one readable line on stderr and exit code 1."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import date
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import ValidationError

from dbsize.config import Settings, get_settings
from dbsize.connectivity import Unreachable, check_postgres, check_redis

if TYPE_CHECKING:
    import uvicorn


class CliError(Exception):
    """One line for the operator; exit code 1."""


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        raise CliError(_describe_invalid(exc)) from exc


def _describe_invalid(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = "DBSIZE_" + "_".join(str(part) for part in error["loc"]).upper()
        # Never echo a URL back: it may carry a password.
        shown = "" if name.endswith("_URL") else f"={error.get('input')!r}"
        problems.append(f"{name}{shown}: {error['msg']}")
    return "invalid " + "; ".join(problems)


def _check_servers(settings: Settings) -> None:
    async def both() -> None:
        await check_postgres(settings.database_url)
        await check_redis(settings.redis_url)

    try:
        asyncio.run(both())
    except Unreachable as exc:
        raise CliError(str(exc)) from exc


def cmd_migrate(args: argparse.Namespace) -> None:
    from dbsize.migrate import create_and_upgrade

    settings = _settings()
    try:
        asyncio.run(check_postgres(settings.database_url))
    except Unreachable as exc:
        raise CliError(str(exc)) from exc
    create_and_upgrade(settings.database_url)
    print("database is at the latest migration", file=sys.stderr)


def cmd_openapi(args: argparse.Namespace) -> None:
    # The committed document must not depend on who renders it: drop every DBSIZE_ variable
    # before the app's modules are imported (a module may read settings at import time).
    for name in [name for name in os.environ if name.upper().startswith("DBSIZE_")]:
        del os.environ[name]
    get_settings.cache_clear()
    from dbsize.openapi_export import render_openapi

    sys.stdout.write(render_openapi())


def _api_server(args: argparse.Namespace, settings: Settings) -> uvicorn.Server:
    import uvicorn

    from dbsize.logging import configure_logging
    from dbsize.main import create_app

    configure_logging(settings.log_format, settings.log_level)
    config = uvicorn.Config(create_app(settings), host=args.host, port=args.port, log_config=None)
    return uvicorn.Server(config)


def _run_api(server: uvicorn.Server, args: argparse.Namespace) -> None:
    from uvicorn.config import STARTUP_FAILURE

    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind or the lifespan fails
        if exc.code != STARTUP_FAILURE:
            raise
        raise CliError(
            f"the API could not start on {args.host}:{args.port}; see the error logged above"
        ) from exc


def cmd_serve(args: argparse.Namespace) -> None:
    _run_api(_api_server(args, _settings()), args)


def cmd_worker(args: argparse.Namespace) -> None:
    settings = _settings()
    _check_servers(settings)
    from dbsize.worker.run import run_worker

    run_worker(settings, burst=args.burst)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (docker stop, systemd, kill) must unwind like Ctrl-C so that the worker and the
    # embedded servers are stopped by the ``finally`` blocks. uvicorn takes the signal over while
    # it serves and re-raises it after its own graceful shutdown.
    raise SystemExit(128 + signum)


def cmd_up(args: argparse.Namespace) -> None:
    from dbsize.embedded import EmbeddedError, EmbeddedServers, should_embed

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = _settings()
    embedded: EmbeddedServers | None = None
    auto = not args.embedded and should_embed(settings)
    try:
        if args.embedded or auto:
            try:
                embedded = EmbeddedServers.start(settings.embedded_dir)
            except EmbeddedError as exc:
                why = "no PostgreSQL or Redis answers at the default addresses and " if auto else ""
                raise CliError(f"{why}{exc}") from exc
            print(f"dbsize: {embedded.describe()}", file=sys.stderr)
            os.environ.update(embedded.environ())
            get_settings.cache_clear()
            settings = _settings()
        try:
            _check_servers(settings)
        except CliError as exc:
            configured = settings.explicitly_set("database_url") or settings.explicitly_set(
                "redis_url"
            )
            if embedded is None and not configured:
                raise CliError(f"{exc} (or run `dbsize up --embedded`)") from exc
            raise
        cmd_migrate(args)
        _serve_with_worker(args, settings)
    finally:
        if embedded is not None:
            embedded.stop()


def _serve_with_worker(args: argparse.Namespace, settings: Settings) -> None:
    """The API in the foreground, the worker as a child; the worker dying stops the API too."""
    server = _api_server(args, settings)
    worker = subprocess.Popen([sys.executable, "-m", "dbsize", "worker"], env=os.environ.copy())
    stopping = threading.Event()
    worker_died: list[int] = []

    def watch_worker() -> None:
        code = worker.wait()
        if not stopping.is_set():
            worker_died.append(code)
            server.should_exit = True  # uvicorn polls this flag and shuts down gracefully

    threading.Thread(target=watch_worker, name="worker-watch", daemon=True).start()
    print(
        f"dbsize: starting the API on http://{args.host}:{args.port} (docs at /docs) and the "
        f"worker (pid {worker.pid})",
        file=sys.stderr,
    )
    try:
        _run_api(server, args)
    finally:
        stopping.set()
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    if worker_died:
        raise CliError(
            f"the worker exited with code {worker_died[0]}, so the API was stopped too; "
            "see the worker's log above"
        )


def cmd_demo(args: argparse.Namespace) -> None:
    from dbsize.samples.demo import run_demo

    settings = _settings()
    _check_servers(settings)
    summary = asyncio.run(
        run_demo(settings, instances=args.instances, databases=args.databases, days=args.days)
    )
    print(json.dumps(summary))


def cmd_aggregate(args: argparse.Namespace) -> None:
    from dbsize.jobs.cli import run_aggregate

    settings = _settings()
    _check_servers(settings)
    sys.exit(asyncio.run(run_aggregate(settings, args)))


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbsize", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], None], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        return p

    for name, func, help_ in (
        ("up", cmd_up, "migrate, then run the API and the worker (with cron)"),
        ("serve", cmd_serve, "run the API only"),
    ):
        p = add(name, func, help_)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        if name == "up":
            p.add_argument(
                "--embedded",
                action="store_true",
                help="start a private PostgreSQL and Redis (needs dbsize[embedded])",
            )
    p = add("worker", cmd_worker, "run the arq worker with its cron schedule")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    add("migrate", cmd_migrate, "create the database if missing and apply migrations")
    add("openapi", cmd_openapi, "print the OpenAPI document (YAML)")
    p = add("demo", cmd_demo, "register a synthetic fleet with size history")
    p.add_argument("--instances", type=int, default=20)
    p.add_argument("--databases", type=int, default=10)
    p.add_argument("--days", type=int, default=400)
    p = add("aggregate", cmd_aggregate, "submit an aggregation job")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--as-of", type=_date)
    scope.add_argument("--start", type=_date)
    scope.add_argument("--incremental", action="store_true")
    p.add_argument("--end", type=_date)
    p.add_argument("--periods", nargs="+", choices=["daily", "weekly", "monthly", "quarterly"])
    p.add_argument("--instance-ids", nargs="+", type=int)
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CliError as exc:
        print(f"dbsize: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
