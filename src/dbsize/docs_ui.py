"""The interactive API docs (Swagger UI at ``/docs``, ReDoc at ``/redoc``) served offline.

FastAPI's defaults load their JavaScript and CSS from a public CDN, so on a network without
internet ``/docs`` is a blank page. These pages load the released assets vendored in
``dbsize/static/`` (see its README for versions and licences) from the service itself.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from dbsize.keys.auth import public

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets; the app must be created with
    ``docs_url=None, redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False, dependencies=[public()])
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{STATIC_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/swagger-ui/favicon-32x32.png",
        )

    @app.get("/redoc", include_in_schema=False, dependencies=[public()])
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API reference",
            redoc_js_url=f"{STATIC_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
