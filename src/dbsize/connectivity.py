"""Reachability checks that turn a dead PostgreSQL or Redis into one line naming the setting."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url


class Unreachable(Exception):
    """A backing server does not answer; the message is the one line shown to the operator."""


def _where(url: str) -> str:
    parsed = make_url(url)
    socket_dir = parsed.query.get("host")  # a unix-socket directory, e.g. the embedded server
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return socket_dir
    return f"{parsed.host or 'localhost'}:{parsed.port or ''}".rstrip(":")


def _redis_where(url: str) -> str:
    """The Redis URL without its password (it ends up in logs and terminals)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


async def check_postgres(database_url: str, *, connect_timeout: float = 3.0) -> None:
    dsn = make_url(database_url).set(drivername="postgresql", database="postgres")
    try:
        conn = await asyncpg.connect(
            dsn.render_as_string(hide_password=False), timeout=connect_timeout
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise Unreachable(
            f"PostgreSQL at {_where(database_url)} is not reachable ({type(exc).__name__}: "
            f"{exc}); start it or set DBSIZE_DATABASE_URL"
        ) from exc
    await conn.close()


async def check_redis(redis_url: str, *, connect_timeout: float = 3.0) -> None:
    client = Redis.from_url(
        redis_url, socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout
    )
    try:
        await asyncio.wait_for(client.ping(), connect_timeout)
    except Exception as exc:
        raise Unreachable(
            f"Redis at {_redis_where(redis_url)} is not reachable ({type(exc).__name__}: {exc}); "
            "start it or set DBSIZE_REDIS_URL"
        ) from exc
    finally:
        await client.aclose()
