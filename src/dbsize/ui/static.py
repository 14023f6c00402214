"""Static files of the dashboard, served with cache headers.

Vendored libraries live in folders named with their version (``vendor/uplot-1.6.32/``), so a
path never changes its content: the browser may keep them a year without asking again. Our own
scripts and styles change with the code, so the browser revalidates them (ETag) on every load.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def cache_control(path: str) -> str:
    """The Cache-Control of a static file, by its path under the static folder."""
    return IMMUTABLE if path.startswith("vendor/") else REVALIDATE


class CachedStaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = cache_control(path)
        return response
