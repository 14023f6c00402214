"""The arq Redis client used to enqueue jobs; it connects lazily so the API starts without Redis."""

from __future__ import annotations

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool


def create_arq_redis(redis_url: str, queue_name: str) -> ArqRedis:
    pool = ConnectionPool.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    return ArqRedis(pool, default_queue_name=queue_name)


def redis_settings(redis_url: str) -> RedisSettings:
    settings: RedisSettings = RedisSettings.from_dsn(redis_url)
    settings.conn_timeout = 2
    return settings
