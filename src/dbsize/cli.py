"""The ``dbsize`` command (typer; rich for progress bars and tables).

Conventions every command follows (docs/operations.md, "Errors"):

- A failure is one line on stderr, ``dbsize: <what went wrong>``, and exit status 1: raise
  ``CliError`` (``dbsize.cli_common``). Never a traceback: ``main`` turns any other exception into
  one line too.
- A wrong command line (unknown option, a value out of range) is one line,
  ``dbsize: usage: <what is wrong>; see dbsize <command> --help``, and exit status 2.
- Ctrl-C exits with 130, SIGTERM with 143.
- stdout carries only machine-readable results (JSON, YAML); progress, tables and notes go to
  stderr.
- Every option has a help line; integer options declare their range (``min=``/``max=``) so a
  bad value is a usage error before anything runs.

Adding commands from another package: write them in that package's ``cli.py`` with helpers from
``dbsize.cli_common`` (not from this module), then register them at the bottom of this file with
one line, either a group::

    app.add_typer(statistics_cli.app, name="statistics")   # dbsize statistics ...

or a single command::

    app.command("aggregate", help="...")(jobs_cli.aggregate)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from dbsize.cli_common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    check_database,
    check_servers,
    load_settings,
    note,
)
from dbsize.collection import cli as collection_cli
from dbsize.config import Settings, get_settings
from dbsize.jobs import cli as jobs_cli
from dbsize.keys import cli as keys_cli
from dbsize.statistics import cli as statistics_cli

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

app = typer.Typer(
    name="dbsize",
    help="Database-capacity statistics: size samples in, period statistics out.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Host = Annotated[str, typer.Option(help="address the API listens on")]
Port = Annotated[int, typer.Option(min=1, max=65535, help="TCP port the API listens on (1-65535)")]


@app.command()
def migrate() -> None:
    """Create the database if missing and apply every migration."""
    _migrate(load_settings())


def _migrate(settings: Settings) -> None:
    from dbsize.migrate import create_and_upgrade

    check_database(settings)
    note(create_and_upgrade(settings.database_url).describe())


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (YAML) on stdout."""
    # The committed document must not depend on who renders it: drop every DBSIZE_ variable
    # before the app's modules are imported (a module may read settings at import time).
    for name in [name for name in os.environ if name.upper().startswith("DBSIZE_")]:
        del os.environ[name]
    get_settings.cache_clear()
    from dbsize.openapi_export import render_openapi

    sys.stdout.write(render_openapi())


def _api_server(host: str, port: int, settings: Settings) -> uvicorn.Server:
    import uvicorn

    from dbsize.gc_tuning import tune_for_serving
    from dbsize.logging import configure_logging
    from dbsize.main import create_app

    configure_logging(settings.log_format, settings.log_level)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_config=None)
    tune_for_serving()
    return uvicorn.Server(config)


def _run_api(server: uvicorn.Server, *, workers: int = 1) -> None:
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import Multiprocess

    try:
        if workers > 1:
            socket = server.config.bind_socket()
            Multiprocess(server.config, sockets=[socket]).run()
        else:
            server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind or the lifespan fails
        if exc.code != STARTUP_FAILURE:
            raise
        where = f"{server.config.host}:{server.config.port}"
        raise CliError(f"the API could not start on {where}; see the error logged above") from exc


Workers = Annotated[
    int,
    typer.Option(
        min=1,
        max=32,
        help="API processes sharing the port (1-32): one per core the API may use; each has "
        "its own database pool",
    ),
]


def serving_app() -> FastAPI:
    """The app of one of ``dbsize serve --workers N``'s processes (uvicorn imports it by name
    in each process): each reads the settings and configures its logging itself."""
    from dbsize.gc_tuning import tune_for_serving
    from dbsize.logging import configure_logging
    from dbsize.main import create_app

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    served = create_app(settings)
    tune_for_serving()
    return served


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000, workers: Workers = 1) -> None:
    """Run the API only (does not migrate)."""
    settings = load_settings()
    if workers == 1:
        _run_api(_api_server(host, port, settings))
        return
    import uvicorn

    # One Python process runs one request's Python at a time: on a machine with N cores, N
    # processes serve N requests' JSON and validation at once (docs/benchmarks/read-api.md).
    config = uvicorn.Config(
        "dbsize.cli:serving_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
    )
    _run_api(uvicorn.Server(config), workers=workers)


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="exit when the queue is empty")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="liveness probe: exit 0 if a worker on this host heartbeated within the lease",
        ),
    ] = False,
) -> None:
    """Run the arq worker with its cron schedule (or, with --check, probe it)."""
    settings = load_settings()
    if check:
        from dbsize.worker.probe import check_worker

        note(check_worker(settings))
        return
    check_servers(settings)
    from dbsize.worker.run import run_worker

    run_worker(settings, burst=burst)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (docker stop, systemd, kill) must unwind like Ctrl-C so that the worker and the
    # embedded servers are stopped by the ``finally`` blocks. uvicorn takes the signal over while
    # it serves and re-raises it after its own graceful shutdown.
    raise SystemExit(128 + signum)


@app.command()
def up(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    embedded: Annotated[
        bool,
        typer.Option(help="start a private PostgreSQL and Redis (needs dbsize[embedded])"),
    ] = False,
) -> None:
    """Migrate, then run the API and the worker (with cron)."""
    from dbsize.embedded import EmbeddedError, EmbeddedServers, should_embed

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = load_settings()
    servers: EmbeddedServers | None = None
    auto = not embedded and should_embed(settings)
    try:
        if embedded or auto:
            try:
                servers = EmbeddedServers.start(settings.embedded_dir)
            except EmbeddedError as exc:
                why = "no PostgreSQL or Redis answers at the default addresses and " if auto else ""
                raise CliError(f"{why}{exc}") from exc
            note(servers.describe())
            os.environ.update(servers.environ())
            get_settings.cache_clear()
            settings = load_settings()
        try:
            check_servers(settings)
        except CliError as exc:
            configured = settings.explicitly_set("database_url") or settings.explicitly_set(
                "redis_url"
            )
            if servers is None and not configured:
                raise CliError(f"{exc} (or run `dbsize up --embedded`)") from exc
            raise
        settings = _with_local_secret_key(settings)  # only once the servers answer
        _migrate(settings)
        _announce_first_key(host, port, settings)
        _serve_with_worker(host, port, settings)
    finally:
        if servers is not None:
            servers.stop()


def _with_local_secret_key(settings: Settings) -> Settings:
    """Without DBSIZE_SECRET_KEY, `dbsize up` uses (and on first run generates) the key kept in
    the git-ignored local folder, so a newcomer can store instance passwords at once."""
    if settings.secret_key is not None:
        return settings
    from dbsize.secret_box import SECRET_KEY_FILE, ensure_local_key

    key, created = ensure_local_key(settings.local_dir)
    if created:
        note(
            f"generated DBSIZE_SECRET_KEY into {settings.local_dir}/{SECRET_KEY_FILE} "
            "(git-ignored; it decrypts the stored instance passwords, so keep it, and set "
            "DBSIZE_SECRET_KEY yourself outside a local setup)"
        )
    os.environ["DBSIZE_SECRET_KEY"] = key
    get_settings.cache_clear()
    return load_settings()


def _announce_first_key(host: str, port: int, settings: Settings) -> None:
    from dbsize.keys.bootstrap import create_first_admin_key, first_key_message

    key = asyncio.run(create_first_admin_key(settings.database_url))
    if key is not None:
        print(first_key_message(key, f"http://{host}:{port}/docs"), file=sys.stderr)


def _serve_with_worker(host: str, port: int, settings: Settings) -> None:
    """The API in the foreground, the worker as a child that is restarted whenever it dies."""
    from dbsize.worker.supervisor import WorkerSupervisor

    server = _api_server(host, port, settings)
    supervisor = WorkerSupervisor(note=note)
    pid = supervisor.start()
    note(f"starting the API on http://{host}:{port} (docs at /docs) and the worker (pid {pid})")
    try:
        _run_api(server)
    finally:
        supervisor.stop()


@app.command()
def demo(
    instances: Annotated[
        int, typer.Option(min=1, max=10_000, help="demo instances to register (1-10000)")
    ] = 20,
    databases: Annotated[
        int, typer.Option(min=1, max=1_000, help="databases per instance (1-1000)")
    ] = 10,
    days: Annotated[
        int, typer.Option(min=1, max=3_660, help="days of history ending today (1-3660)")
    ] = 400,
    aggregate: Annotated[
        bool,
        typer.Option(
            help="then compute the fleet's statistics: a backfill job through the ledger, "
            "followed with a progress bar (--no-aggregate: samples only)"
        ),
    ] = True,
) -> None:
    """Register a synthetic fleet with size history (prints a JSON summary), then aggregate its
    whole history so the read API has answers."""
    from datetime import timedelta

    from dbsize.jobs.cli import run_local_job
    from dbsize.jobs.schemas import JobCreate
    from dbsize.periods import today_in
    from dbsize.samples.demo import run_demo

    settings = load_settings()
    check_servers(settings)
    summary = asyncio.run(run_demo(settings, instances=instances, databases=databases, days=days))
    print(json.dumps(summary), flush=True)
    if aggregate:
        today = today_in(settings.tz)
        body = JobCreate(start=today - timedelta(days=summary["days"] - 1), end=today)
        code = asyncio.run(run_local_job(settings, body))
        if code:
            raise typer.Exit(code)


# Commands from other packages: one registration line each (see the module docstring).
app.command("aggregate")(jobs_cli.aggregate)
app.command("collect")(collection_cli.collect)
app.command("rotate-secrets")(collection_cli.rotate_secrets)
app.add_typer(keys_cli.app, name="keys")
app.command("top")(statistics_cli.top)
app.command("forecast")(statistics_cli.forecast)
app.command("freshness")(statistics_cli.freshness)


def _usage_line(exc: typer.TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "dbsize"
    message = " ".join(exc.format_message().split()).rstrip(".")
    return f"usage: {message}; see {command} --help"


def run(application: typer.Typer, argv: Sequence[str]) -> int:
    """Run ``application`` on ``argv``; every failure is one line on stderr. The exit status."""
    args = list(argv)
    command = typer.main.get_command(application)
    if not args:  # the help, but as a usage error: a script that forgot the command must fail
        command.main(args=["--help"], prog_name="dbsize", standalone_mode=False)
        return EXIT_USAGE
    try:
        result = command.main(args=args, prog_name="dbsize", standalone_mode=False)
    except typer.TyperException as exc:  # typer's usage errors carry exit_code 2
        if exc.exit_code == EXIT_USAGE:
            print(f"dbsize: {_usage_line(exc)}", file=sys.stderr)
        else:
            print(f"dbsize: {' '.join(exc.format_message().split())}", file=sys.stderr)
        return exc.exit_code
    except CliError as exc:
        print(f"dbsize: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (KeyboardInterrupt, typer.Abort):
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, never a traceback
        flat = " ".join(str(exc).split())
        print(f"dbsize: unexpected error: {type(exc).__name__}: {flat}", file=sys.stderr)
        return EXIT_FAILURE
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> None:
    """The ``dbsize`` entry point."""
    sys.exit(run(app, sys.argv[1:] if argv is None else argv))
