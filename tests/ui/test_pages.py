"""The dashboard's shells and static files over HTTP (the browser suite drives the pages)."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from dbsize.ui.static import IMMUTABLE, REVALIDATE, cache_control


class TestRoutes:
    async def test_root_redirects_to_the_dashboard(self, client: AsyncClient) -> None:
        response = await client.get("/")
        assert (response.status_code, response.headers["location"]) == (307, "/ui")

    @pytest.mark.parametrize(
        ("path", "title", "script"),
        [
            ("/ui", "<title>Overview · dbsize</title>", "/ui/static/capacity.js"),
            ("/ui/jobs", "<title>Jobs · dbsize</title>", "/ui/static/jobs.js"),
            (
                "/ui/jobs/6f1c7a52-5a43-4c1e-9b43-000000000001",
                "<title>Job 6f1c7a52 · dbsize</title>",
                "/ui/static/jobs.js",
            ),
            ("/ui/fleet", "<title>Fleet · dbsize</title>", "/ui/static/capacity.js"),
            ("/ui/instances/7", "<title>Instance 7 · dbsize</title>", "/ui/static/capacity.js"),
        ],
    )
    async def test_each_page_serves_its_shell_with_the_configured_time_zone(
        self, client: AsyncClient, path: str, title: str, script: str
    ) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert title in response.text
        assert 'data-timezone="UTC"' in response.text
        assert f'<script defer src="{script}"></script>' in response.text
        assert "https://" not in response.text.replace("https://dbsize.dev", "")

    async def test_a_job_id_that_is_not_a_uuid_is_a_problem_not_a_page(
        self, client: AsyncClient
    ) -> None:
        response = await client.get("/ui/jobs/42")
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"

    async def test_an_instance_id_beyond_the_column_is_a_problem_not_a_page(
        self, client: AsyncClient
    ) -> None:
        response = await client.get("/ui/instances/92014848792315")
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"

    async def test_pages_are_not_in_the_api_document(self, client: AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert [p for p in paths if p == "/" or p.startswith("/ui")] == []


class TestStaticFiles:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("vendor/uplot-1.6.32/uPlot.iife.min.js", IMMUTABLE),
            ("vendor/alpinejs-3.17.4/alpine.min.js", IMMUTABLE),
            ("dbsize.js", REVALIDATE),
            ("dbsize.css", REVALIDATE),
        ],
    )
    def test_cache_control_by_path(self, path: str, expected: str) -> None:
        assert cache_control(path) == expected

    async def test_vendored_library_is_served_immutable_with_its_licence_beside_it(
        self, client: AsyncClient
    ) -> None:
        script = await client.get("/ui/static/vendor/uplot-1.6.32/uPlot.iife.min.js")
        assert script.status_code == 200
        assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert script.text.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
        licence = await client.get("/ui/static/vendor/alpinejs-3.17.4/LICENSE.md")
        assert "Copyright © 2019-2021 Caleb Porzio and contributors" in licence.text

    async def test_own_script_revalidates_and_answers_304_to_its_etag(
        self, client: AsyncClient
    ) -> None:
        first = await client.get("/ui/static/dbsize.js")
        assert first.headers["cache-control"] == "no-cache"
        again = await client.get(
            "/ui/static/dbsize.js", headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        assert again.headers["cache-control"] == "no-cache"

    async def test_missing_static_file_is_404(self, client: AsyncClient) -> None:
        assert (await client.get("/ui/static/nothing.js")).status_code == 404
