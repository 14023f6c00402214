"""Read API, two versions of the code side by side: each endpoint timed against two ``dbsize
serve`` processes on one fleet, this checkout's code and another checkout's ``src``, one after
the other, their order swapped every round.

    flock /tmp/dbsize-bench.lock .venv/bin/python bench/read_ab.py --reuse DB --other ../old/src
    flock /tmp/dbsize-bench.lock .venv/bin/python bench/read_ab.py --reuse DB --other SRC \\
        --rounds 5 --path '/v1/statistics/instances?period_type=daily&limit=500'

Why: on these VMs the same code's CPU per request moved by up to 40 % between two runs minutes
apart (docs/benchmarks/read-api.md, "Eighth round"), so two full runs of ``bench/read_api.py``,
one per version, compare the VM's two moments as much as the code. Here the two versions'
timings of one endpoint are seconds apart, and the report is each version's median over the
rounds. The fleet is one that ``bench/read_api.py --keep`` made; the timing is its
``time_paths`` (8 clients, 200 requests, warm-up included).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections import defaultdict

import httpx
from sqlalchemy.engine import make_url

from aggregation import SERVER_URL
from ingest import _free_port, _wait_ready
from read_api import ENDPOINTS, Timing, admin_key, ensure_capacities, start_server, time_paths

VERSIONS = ("this", "other")


async def compare(rendered: str, args: argparse.Namespace) -> None:
    key = await admin_key(rendered)
    servers = {}
    bases = {}
    for version in VERSIONS:
        port = _free_port()
        pythonpath = args.other if version == "other" else None
        servers[version] = start_server(rendered, port, 1, pythonpath=pythonpath)
        bases[version] = f"http://127.0.0.1:{port}"
    try:
        for version in VERSIONS:
            async with httpx.AsyncClient(base_url=bases[version]) as probe:
                await _wait_ready(probe, servers[version])
        paths = [(p, p) for p in args.path] if args.path else ENDPOINTS
        timings: dict[tuple[str, str], list[Timing]] = defaultdict(list)
        for number in range(args.rounds):
            order = VERSIONS if number % 2 == 0 else VERSIONS[::-1]
            print(f"round {number + 1} of {args.rounds}: {' then '.join(order)}", flush=True)
            for name, path in paths:
                for version in order:
                    (timing,) = await time_paths(
                        bases[version], key, [(name, path)], requests=args.requests,
                        clients=args.clients, server_pid=servers[version].pid,
                    )  # fmt: skip
                    timings[(name, version)].append(timing)
        report(paths, timings, args.other)
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(10)


def report(
    paths: list[tuple[str, str]], timings: dict[tuple[str, str], list[Timing]], other: str
) -> None:
    print("\nmedians over the rounds: p95 ms (min-max) / the API's CPU per request, ms")
    print(f"other: {other}")
    print(f"{'endpoint':42} {'this':>26} {'other':>26}")
    for name, _ in paths:
        cells = []
        for version in VERSIONS:
            runs = timings[(name, version)]
            p95 = sorted(t.p95_ms for t in runs)
            cpu = statistics.median(t.server_cpu_ms or 0.0 for t in runs)
            cells.append(f"{statistics.median(p95):6.1f} ({p95[0]:.1f}-{p95[-1]:.1f}) / {cpu:4.2f}")
        print(f"{name:42} {cells[0]:>26} {cells[1]:>26}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", metavar="DB", required=True, help="a kept read fleet")
    parser.add_argument("--other", metavar="SRC", required=True, help="the other code's src")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (order swapped each)")
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--path", action="append", default=[], help="time these GET paths")
    args = parser.parse_args()
    rendered = make_url(SERVER_URL).set(database=args.reuse).render_as_string(hide_password=False)
    asyncio.run(ensure_capacities(rendered))
    asyncio.run(compare(rendered, args))


if __name__ == "__main__":
    main()
