from __future__ import annotations

from httpx import AsyncClient

from tests.factories import create_instance


class TestCreateInstance:
    async def test_returns_201_with_id_and_location(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/instances",
            json={
                "name": "pg-orders-01",
                "db_type": "postgresql",
                "host": "10.0.0.1",
                "port": 5432,
            },
        )
        assert response.status_code == 201
        body = response.json()
        assert body["id"] > 0
        assert body["is_active"] is True
        assert response.headers["location"] == f"/v1/instances/{body['id']}"

    async def test_duplicate_name_is_409_problem(self, client: AsyncClient) -> None:
        await create_instance(client, "dup")
        response = await client.post("/v1/instances", json={"name": "dup", "db_type": "mysql"})
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Conflict"

    async def test_unknown_db_type_is_422_with_pointer(self, client: AsyncClient) -> None:
        response = await client.post("/v1/instances", json={"name": "x", "db_type": "db2"})
        assert response.status_code == 422
        problem = response.json()
        assert problem["status"] == 422
        assert problem["errors"][0]["pointer"] == "#/body/db_type"

    async def test_blank_name_is_rejected(self, client: AsyncClient) -> None:
        response = await client.post("/v1/instances", json={"name": "   ", "db_type": "mysql"})
        assert response.status_code == 422


class TestListInstances:
    async def test_cursor_pages_cover_every_instance_once(self, client: AsyncClient) -> None:
        for i in range(7):
            await create_instance(client, f"inst-{i}", db_type="mysql" if i % 2 else "postgresql")
        seen: list[int] = []
        cursor = None
        while True:
            params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/v1/instances", params=params)).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(seen)
        assert len(seen) == len(set(seen)) == 7

    async def test_filters(self, client: AsyncClient) -> None:
        await create_instance(client, "alpha-pg", db_type="postgresql")
        beta = await create_instance(client, "beta-my", db_type="mysql")
        await client.patch(f"/v1/instances/{beta['id']}", json={"is_active": False})
        by_type = (await client.get("/v1/instances", params={"db_type": "mysql"})).json()
        assert [i["name"] for i in by_type["items"]] == ["beta-my"]
        active = (await client.get("/v1/instances", params={"is_active": True})).json()
        assert [i["name"] for i in active["items"]] == ["alpha-pg"]
        by_name = (await client.get("/v1/instances", params={"name": "ALPHA"})).json()
        assert [i["name"] for i in by_name["items"]] == ["alpha-pg"]

    async def test_page_size_above_maximum_is_422(self, client: AsyncClient) -> None:
        response = await client.get("/v1/instances", params={"limit": 501})
        assert response.status_code == 422

    async def test_garbage_cursor_is_422(self, client: AsyncClient) -> None:
        response = await client.get("/v1/instances", params={"cursor": "!!!"})
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"


class TestUpdateAndDelete:
    async def test_patch_changes_only_given_fields(self, client: AsyncClient) -> None:
        inst = await create_instance(client, "a", host="h1")
        response = await client.patch(f"/v1/instances/{inst['id']}", json={"port": 3306})
        assert response.status_code == 200
        assert response.json()["host"] == "h1"
        assert response.json()["port"] == 3306

    async def test_unknown_instance_is_404_problem(self, client: AsyncClient) -> None:
        response = await client.get("/v1/instances/999999")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["instance"] == "/v1/instances/999999"

    async def test_delete_without_history(self, client: AsyncClient) -> None:
        inst = await create_instance(client, "gone")
        assert (await client.delete(f"/v1/instances/{inst['id']}")).status_code == 204
        assert (await client.get(f"/v1/instances/{inst['id']}")).status_code == 404
