"""`dbsize top`, `dbsize forecast`, `dbsize freshness`: clients of the HTTP API (``--url`` /
``DBSIZE_URL``, ``--api-key`` / ``DBSIZE_API_KEY``) through :mod:`dbsize.client`, so they work
from a laptop against a deployed service. Tables go to stderr; ``--json`` prints the API's JSON
on stdout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from dbsize.cli_common import CliError, print_table
from dbsize.client import DEFAULT_URL, ApiError, DbsizeClient
from dbsize.statistics.schemas import MAX_TOP_N

T = TypeVar("T")

Url = Annotated[
    str, typer.Option(envvar="DBSIZE_URL", help="the dbsize service's base URL (DBSIZE_URL)")
]
ApiKey = Annotated[
    str | None,
    typer.Option(envvar="DBSIZE_API_KEY", help="API key, sent as a bearer token (DBSIZE_API_KEY)"),
]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON answer on stdout")]
PeriodTypeOption = Annotated[
    str, typer.Option(help="daily, weekly, monthly or quarterly", metavar="PERIOD")
]
Level = Annotated[str, typer.Option(help="database or instance", metavar="LEVEL")]
InstanceNames = Annotated[
    list[str] | None,
    typer.Option("--instance", help="only this instance, by name (repeatable)", metavar="NAME"),
]
DbType = Annotated[
    str | None, typer.Option(help="postgresql, mysql, sqlserver or oracle", metavar="TYPE")
]
Environment = Annotated[str | None, typer.Option(help="only instances of this environment")]


@contextmanager
def api_client(url: str, api_key: str | None) -> Iterator[DbsizeClient]:
    """The client, with every API error turned into the CLI's one line."""
    try:
        with DbsizeClient(url, api_key=api_key) as client:
            yield client
    except ApiError as exc:
        problems = "; ".join(
            f"{e.get('pointer', '')} {e.get('detail', '')}".strip()
            for e in exc.problem.get("errors") or []
        )
        detail = exc.detail or exc.title
        raise CliError(f"{detail}{' (' + problems + ')' if problems else ''}") from exc


def instance_ids(client: DbsizeClient, names: list[str] | None) -> list[int]:
    return [client.instance_by_name(name).id for name in names or []]


def emit(answer: BaseModel, as_json: bool, table: Callable[[], None]) -> None:
    if as_json:
        print(answer.model_dump_json(by_alias=True))
    else:
        table()


def _number(value: Any) -> str:
    return "" if value is None else f"{value:,.1f}" if not isinstance(value, int) else str(value)


def top(
    period_type: PeriodTypeOption = "monthly",
    level: Level = "database",
    by: Annotated[
        str,
        typer.Option(
            help="size_change_mb, size_change_percent or growth_mb_per_day", metavar="MEASURE"
        ),
    ] = "size_change_mb",
    n: Annotated[int, typer.Option("-n", min=1, max=MAX_TOP_N, help="how many rows (1-1000)")] = 10,
    complete: Annotated[
        bool, typer.Option(help="rank the latest complete period (--no-complete: the latest)")
    ] = True,
    instance: InstanceNames = None,
    db_type: DbType = None,
    environment: Environment = None,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """The largest movers of the latest period, with the previous period's average."""
    with api_client(url, api_key) as client:
        answer = client.top(
            period_type,
            level=level,
            by=by,
            n=n,
            complete=complete,
            instance_id=instance_ids(client, instance),
            db_type=db_type,
            environment=environment,
        )

    def table() -> None:
        columns = ["instance", "database", "previous avg MB", "avg MB", "change MB", "change %"]
        rows = [
            {
                "instance": r.instance_name,
                "database": r.database_name or "",
                "previous avg MB": _number(r.previous_avg_size_mb),
                "avg MB": _number(r.avg_size_mb),
                "change MB": _number(r.size_change_mb),
                "change %": _number(r.size_change_percent),
            }
            for r in answer.items
        ]
        period = answer.period_start or "no period yet"
        print_table(f"top {level}s by {by}, {period_type} {period}", columns, rows)

    emit(answer, as_json, table)


def forecast(
    level: Level = "database",
    threshold_mb: Annotated[
        float | None, typer.Option(min=0.001, help="threshold in MB (default: each capacity)")
    ] = None,
    horizon_days: Annotated[
        int, typer.Option(min=1, max=3650, help="look this many days ahead (1-3650)")
    ] = 365,
    window_days: Annotated[
        int, typer.Option(min=7, max=366, help="fit the line to this many days (7-366)")
    ] = 30,
    status: Annotated[
        list[str] | None,
        typer.Option(help="only this status, e.g. ok, exceeded, stale (repeatable)"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="rows to show (1-500)")] = 50,
    instance: InstanceNames = None,
    db_type: DbType = None,
    environment: Environment = None,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Days until each database (or instance) reaches its capacity, soonest first, with the
    95 % prediction band's earliest date."""
    with api_client(url, api_key) as client:
        answer = client.forecast(
            level=level,
            threshold_mb=threshold_mb,
            horizon_days=horizon_days,
            window_days=window_days,
            status=status or [],
            limit=limit,
            instance_id=instance_ids(client, instance),
            db_type=db_type,
            environment=environment,
        )

    def table() -> None:
        columns = ["instance", "database", "status", "last MB", "threshold MB", "MB/day",
                   "r2", "days", "projected", "earliest"]  # fmt: skip
        rows = [
            {
                "instance": r.instance_name,
                "database": r.database_name or "",
                "status": r.status.value,
                "last MB": _number(r.last_value_mb),
                "threshold MB": _number(r.threshold_mb),
                "MB/day": _number(r.slope_mb_per_day),
                "r2": "" if r.r2 is None else f"{r.r2:.3f}",
                "days": _number(r.days_until_threshold),
                "projected": r.projected_date or "",
                "earliest": r.earliest_date or "",
            }
            for r in answer.items
        ]
        counts = ", ".join(f"{k.value} {v}" for k, v in answer.counts.items() if v)
        print_table(f"forecast ({counts or 'no keys'})", columns, rows)

    emit(answer, as_json, table)


def freshness(url: Url = DEFAULT_URL, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Is the data fresh: newest complete period per type, last jobs, stale instances."""
    with api_client(url, api_key) as client:
        answer = client.freshness()

    def table() -> None:
        print_table(
            f"periods (today {answer.today})",
            ["period", "newest complete", "computed at", "newest"],
            [
                {
                    "period": p.period_type.value,
                    "newest complete": p.newest_complete_period_start or "",
                    "computed at": p.newest_complete_computed_at or "",
                    "newest": p.newest_period_start or "",
                }
                for p in answer.periods
            ],
        )
        print_table(
            f"stale instances (no sample for {answer.stale_after_days} days)",
            ["instance", "last sample"],
            [
                {"instance": s.instance_name, "last sample": s.last_sample_date or "never"}
                for s in answer.stale_instances
            ],
        )
        pending = answer.pending_changes
        print_table(
            "not yet aggregated",
            ["changes", "instances", "oldest"],
            [{"changes": pending.changes, "instances": pending.instances,
              "oldest": pending.oldest_recorded_at or ""}],
        )  # fmt: skip

    emit(answer, as_json, table)
