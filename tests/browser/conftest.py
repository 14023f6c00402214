"""Browser tests: the live app under uvicorn, a real arq worker and Debian's headless Chromium
driven by Playwright (``executable_path``; Playwright's own browser download cannot work here).

Every page may reach only 127.0.0.1: any other request is aborted and fails the test, as does a
console error, an uncaught exception or an HTTP error answer. Screenshots go to
``test-artifacts/screenshots/`` (``DBSIZE_TEST_ARTIFACTS``), never into git.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from arq.worker import Worker
from httpx import AsyncClient
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    Route,
    async_playwright,
)
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.config import Settings
from dbsize.keys.tokens import Scope
from dbsize.main import create_app
from dbsize.samples.demo import run_demo
from tests.conftest import bearer, make_key
from tests.jobs.conftest import start_worker, stop_worker

CHROMIUM = os.environ.get("DBSIZE_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("DBSIZE_TEST_ARTIFACTS", "test-artifacts"))
WIDTHS = {"desktop": 1280, "phone": 390}
# The demo fleet the pages are checked on ends today (the forecast calls a key whose last sample
# is older than DBSIZE_STALE_AFTER_DAYS stale) and is small enough to aggregate in seconds.
DEMO_TODAY = datetime.now(UTC).date()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[str]:
    """The app for ``settings``, served by uvicorn on a free port of 127.0.0.1, in the tests'
    event loop; yields its base URL."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.025)
    else:
        raise RuntimeError("uvicorn did not start in 5 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@pytest.fixture(scope="session")
async def live_server(settings: Settings) -> AsyncIterator[str]:
    async with serve(settings) as base_url:
        yield base_url


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        await browser.close()


@dataclass
class BrowserLog:
    """What went wrong in the page: console errors, exceptions, failed or refused requests."""

    problems: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def page_error(self, error: Exception) -> None:
        self.problems.append(f"uncaught: {error}")

    def request_failed(self, request: Request) -> None:
        failure = request.failure or ""
        # A fetch or event stream still open when the page navigates (reload, a link) is
        # cancelled by the browser (net::ERR_ABORTED): not a failure. A request to any host but
        # 127.0.0.1 is refused as ERR_BLOCKED_BY_CLIENT and counts.
        if failure == "net::ERR_ABORTED":
            return
        self.problems.append(f"request failed: {request.method} {request.url} {failure}")

    def response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )


async def _local_only(route: Route) -> None:
    if urlsplit(route.request.url).hostname == "127.0.0.1":
        await route.continue_()
    else:
        await route.abort("blockedbyclient")


@pytest.fixture
async def page_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
async def page_key(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    """The key the user entered in the page: `write`, as an operator's would be."""
    return await make_key(sessionmaker, Scope.write, name="dashboard")


async def open_page(
    browser: Browser, log: BrowserLog, key: str | None, *, browser_time_zone: str | None = None
) -> tuple[BrowserContext, Page]:
    """A fresh context at 1280 px that reaches only 127.0.0.1, logging problems into ``log``;
    with ``key``, as if the user had entered it (the page keeps it in sessionStorage); with
    ``browser_time_zone``, the browser's own zone (the machine's otherwise)."""
    context = await browser.new_context(
        viewport={"width": WIDTHS["desktop"], "height": 900}, timezone_id=browser_time_zone
    )
    await context.route("**/*", _local_only)
    if key is not None:
        await context.add_init_script(f"sessionStorage.setItem('dbsize.apiKey', {json.dumps(key)})")
    page = await context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", log.console)
    page.on("pageerror", log.page_error)
    page.on("requestfailed", log.request_failed)
    page.on("response", log.response)
    return context, page


@pytest.fixture
async def page(browser: Browser, page_log: BrowserLog, page_key: str) -> AsyncIterator[Page]:
    """A fresh page holding the user's key; the test fails if the page logged any problem."""
    context, page = await open_page(browser, page_log, page_key)
    yield page
    await context.close()
    assert page_log.problems == []


async def screenshots(page: Page, name: str) -> None:
    """Full-page screenshots at 1280 px and 390 px, as test artefacts."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    for label, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": 900})
        await page.wait_for_timeout(150)  # charts redraw on resize
        await page.screenshot(path=folder / f"{name}-{label}.png", full_page=True)
    await page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    worker, task = await start_worker(settings)
    yield worker
    await stop_worker(worker, task)


@pytest.fixture
async def demo_fleet(settings: Settings) -> dict[str, int]:
    """The demo fleet, small: 4 instances x 3 databases x 120 days ending DEMO_TODAY."""
    return await run_demo(settings, instances=4, databases=3, days=120, today=DEMO_TODAY)


@pytest.fixture(autouse=True)
async def _empty_queue(settings: Settings) -> AsyncIterator[None]:
    """Each test starts with no arq jobs of this run's queue (a queued job left by one test
    would otherwise be picked up by the next test's worker)."""
    yield
    redis = Redis.from_url(settings.redis_url)
    try:
        keys = [settings.queue_name]
        async for key in redis.scan_iter(match="arq:*"):
            keys.append(key)
        await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture
async def api(live_server: str, admin_key: str) -> AsyncIterator[AsyncClient]:
    """An operator's HTTP client of the live server: what the page shows is checked against it."""
    async with AsyncClient(base_url=live_server, timeout=10, headers=bearer(admin_key)) as client:
        yield client
