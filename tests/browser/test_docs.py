"""The docs UI works offline: every request stays on 127.0.0.1 and every operation renders."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Browser, Page

from tests.browser.conftest import BrowserLog, open_page

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def _operations(live_server: str) -> list[tuple[str, str, str]]:
    """(METHOD, path, operationId) of every operation in the served OpenAPI document."""
    async with httpx.AsyncClient(timeout=10) as client:
        spec: dict[str, Any] = (await client.get(f"{live_server}/openapi.json")).json()
    return sorted(
        (method.upper(), path, operation["operationId"])
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    )


class TestSwaggerUi:
    async def test_docs_renders_every_operation_offline(self, page: Page, live_server: str) -> None:
        expected = await _operations(live_server)
        await page.goto(f"{live_server}/docs")
        blocks = page.locator(".opblock")
        await blocks.nth(len(expected) - 1).wait_for(timeout=30_000)
        shown = []
        for index in range(await blocks.count()):
            block = blocks.nth(index)
            method = await block.locator(".opblock-summary-method").inner_text()
            path = await block.locator(".opblock-summary-path").get_attribute("data-path")
            shown.append((method.strip().upper(), path))
        assert sorted(shown) == [(method, path) for method, path, _ in expected]
        assert await page.title() == "dbsize - API docs"


class TestRedoc:
    async def test_redoc_renders_every_operation_offline(
        self, page: Page, live_server: str
    ) -> None:
        expected = await _operations(live_server)
        await page.goto(f"{live_server}/redoc")
        for _, _, operation_id in expected:
            section = page.locator(f'[data-section-id$="/{operation_id}"]').first
            await section.wait_for(state="attached", timeout=30_000)


class TestOfflineGuard:
    """The page fixture's guard itself: what it must catch, it catches."""

    async def test_a_request_off_the_machine_is_blocked_and_reported(
        self, browser: Browser, live_server: str
    ) -> None:
        log = BrowserLog()
        context, page = await open_page(browser, log, None)
        try:
            await page.goto(f"{live_server}/healthz")
            await page.set_content('<script src="https://cdn.jsdelivr.net/npm/x/x.js"></script>')
        finally:
            await context.close()
        assert log.problems == [
            "request failed: GET https://cdn.jsdelivr.net/npm/x/x.js "
            "net::ERR_BLOCKED_BY_CLIENT.Inspector",
            "console error: Failed to load resource: net::ERR_BLOCKED_BY_CLIENT.Inspector",
        ]

    async def test_a_console_error_is_reported(self, browser: Browser, live_server: str) -> None:
        log = BrowserLog()
        context, page = await open_page(browser, log, None)
        try:
            await page.goto(f"{live_server}/healthz")
            await page.evaluate("console.error('broken widget')")
        finally:
            await context.close()
        assert log.problems == ["console error: broken widget"]
