"""The ``dbsize`` command. Every failure ends in one readable line on stderr and exit code 1."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import date

from dbsize.config import Settings, get_settings
from dbsize.connectivity import Unreachable, check_postgres, check_redis


class CliError(Exception):
    """One line for the operator; exit code 1."""


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic ValidationError names the bad DBSIZE_ variable
        raise CliError(f"invalid settings: {exc}".replace("\n", " ")) from exc


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
    from dbsize.openapi_export import render_openapi

    sys.stdout.write(render_openapi())


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from dbsize.logging import configure_logging
    from dbsize.main import create_app

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None)


def cmd_worker(args: argparse.Namespace) -> None:
    from dbsize.worker.run import run_worker

    settings = _settings()
    _check_servers(settings)
    run_worker(settings, burst=args.burst)


def cmd_up(args: argparse.Namespace) -> None:
    from dbsize.embedded import EmbeddedServers, should_embed

    settings = _settings()
    embedded: EmbeddedServers | None = None
    if args.embedded or should_embed(settings):
        embedded = EmbeddedServers.start(settings.embedded_dir)
        os.environ.update(embedded.environ())
        get_settings.cache_clear()
        settings = _settings()
    try:
        _check_servers(settings)
        cmd_migrate(args)
        worker = subprocess.Popen([sys.executable, "-m", "dbsize", "worker"], env=os.environ.copy())
        try:
            print(
                f"dbsize: API on http://{args.host}:{args.port} (docs at /docs), worker pid "
                f"{worker.pid}",
                file=sys.stderr,
            )
            cmd_serve(args)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
    finally:
        if embedded is not None:
            embedded.stop()


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
