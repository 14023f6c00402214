from __future__ import annotations

import asyncio
from typing import Any

from httpx import AsyncClient

from tests.collection.servers import MARIADB_HOST, MARIADB_PORT, PG_HOST, PG_PORT
from tests.factories import create_instance

TERMINAL = {"succeeded", "partial", "failed", "cancelled"}


async def pg_instance(client: AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "host": PG_HOST,
        "port": PG_PORT,
        "username": "postgres",
        "tls_mode": "disable",
        **fields,
    }
    return await create_instance(client, name, **values)


async def mariadb_instance(client: AsyncClient, name: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "db_type": "mysql",
        "host": MARIADB_HOST,
        "port": MARIADB_PORT,
        "username": "root",
        "tls_mode": "disable",
        **fields,
    }
    return await create_instance(client, name, **values)


async def submit_collection(
    client: AsyncClient, instance_ids: list[int] | None = None
) -> dict[str, Any]:
    body = {} if instance_ids is None else {"instance_ids": instance_ids}
    response = await client.post("/v1/collection-jobs", json=body)
    assert response.status_code == 202, response.text
    data: dict[str, Any] = response.json()
    return data


async def wait_collection(
    client: AsyncClient, job_id: str, wanted: set[str] | None = None, timeout: float = 60
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    wanted = wanted or TERMINAL
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/collection-jobs/{job_id}")).json()
        if body["status"] in wanted:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} still {body['status']} after {timeout} s")
        await asyncio.sleep(0.05)


async def records(client: AsyncClient, job_id: str) -> dict[int, dict[str, Any]]:
    response = await client.get(f"/v1/collection-jobs/{job_id}/instances")
    assert response.status_code == 200, response.text
    return {item["instance_id"]: item for item in response.json()["items"]}


async def wait_record(
    client: AsyncClient, job_id: str, instance_id: int, wanted: str, timeout: float = 30
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await records(client, job_id))[instance_id]["status"] != wanted:
        if loop.time() > deadline:
            raise AssertionError(f"record of {instance_id} never became {wanted}")
        await asyncio.sleep(0.05)


async def samples(client: AsyncClient, instance_id: int) -> dict[str, float]:
    response = await client.get(f"/v1/instances/{instance_id}/size-samples", params={"limit": 500})
    return {item["database_name"]: item["size_mb"] for item in response.json()["items"]}
