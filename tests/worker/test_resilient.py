"""The worker's poll loop on a Redis that goes away: a connection lost in the middle of arq's
WATCH is an outage (not a bug that ends the process), and a job arq failed to start gives its
slot back. Both on a private redis-server that the test really stops."""

from __future__ import annotations

from typing import Any

import pytest
import redis.exceptions
from arq.connections import RedisSettings, create_pool
from arq.worker import func

from dbsize.errors import unavailable_dependency
from dbsize.worker.resilient import ResilientWorker
from tests.faults.conftest import PrivateRedis, private_redis

__all__ = ["private_redis"]  # the fault suite's fixture: a redis-server of this test's own

MAX_JOBS = 3


async def _noop(ctx: dict[str, Any]) -> None:
    return None


async def test_a_connection_lost_while_watching_is_a_redis_outage(
    private_redis: PrivateRedis,
) -> None:
    pool = await create_pool(RedisSettings(port=private_redis.port, conn_retries=0))
    try:
        async with pool.pipeline(transaction=True) as pipe:
            await pipe.watch("arq:in-progress:some-job")
            private_redis.stop()
            with pytest.raises(redis.exceptions.WatchError) as raised:
                await pipe.exists("arq:in-progress:some-job")
    finally:
        await pool.aclose(close_connection_pool=True)
    assert unavailable_dependency(raised.value) == "Redis"
    # A WatchError of a lost race (no connection error behind it) stays a bug to raise.
    assert unavailable_dependency(redis.exceptions.WatchError("watched key changed")) is None


async def test_a_job_that_could_not_start_gives_its_slot_back_and_the_poll_survives(
    private_redis: PrivateRedis,
) -> None:
    settings = RedisSettings(port=private_redis.port, conn_retries=0)
    worker = ResilientWorker(
        functions=[func(_noop, name="noop")],
        redis_settings=settings,
        handle_signals=False,
        max_jobs=MAX_JOBS,
        poll_delay=0.05,
    )
    worker._pool = await create_pool(settings)
    free_slots = worker.sem._value
    try:
        private_redis.stop()
        with pytest.raises(redis.exceptions.ConnectionError):
            await worker.start_jobs([b"job-1", b"job-2"])
        # arq had taken a slot for job-1 before Redis failed; without giving it back, every
        # outage would shrink the worker until no job could start.
        assert worker.job_counter == 0
        assert worker.sem._value == free_slots
        await worker._poll_iteration()  # waited out, not raised
        assert worker.failures == 1
        private_redis.start()
        await worker._poll_iteration()
        assert worker.failures == 0
        assert (worker.job_counter, worker.sem._value) == (0, free_slots)
    finally:
        await worker.pool.aclose(close_connection_pool=True)
