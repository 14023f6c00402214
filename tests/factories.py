"""Plain async factories for test data, through the public API."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient


async def create_instance(
    client: AsyncClient, name: str = "pg-01", **fields: Any
) -> dict[str, Any]:
    body = {"name": name, "db_type": "postgresql", **fields}
    response = await client.post("/v1/instances", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data
