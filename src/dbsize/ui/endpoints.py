"""The dashboard's pages (``/ui``). Each is a Jinja2 shell: layout, headings, labelled controls
and table headers. The numbers come from the public API, fetched by the browser
(``static/dbsize.js``), so the page and every other client read the same truth with the same
key; nothing here queries the database."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from dbsize import __version__
from dbsize.config import Settings
from dbsize.keys.auth import public

INSTANCE_ID = Annotated[int, PathParam(ge=1, le=2_147_483_647)]

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")

# The shells hold no data (the browser fetches it with the user's key), so they are public.
router = APIRouter(include_in_schema=False, dependencies=[public()])


def _page(request: Request, template: str, title: str, **context: Any) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {"title": title, "timezone": settings.timezone, "version": __version__, **context},
    )
    # The shell is small and the data is fetched fresh; never serve a stale shell.
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    return _page(request, "overview.html", "Overview", nav="overview")


@router.get("/ui/jobs", response_class=HTMLResponse)
async def jobs(request: Request) -> HTMLResponse:
    return _page(request, "jobs.html", "Jobs", nav="jobs")


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
async def job(request: Request, job_id: uuid.UUID) -> HTMLResponse:
    return _page(request, "job.html", f"Job {str(job_id)[:8]}", nav="jobs", job_id=str(job_id))


@router.get("/ui/fleet", response_class=HTMLResponse)
async def fleet(request: Request) -> HTMLResponse:
    return _page(request, "fleet.html", "Fleet", nav="fleet")


@router.get("/ui/instances/{instance_id}", response_class=HTMLResponse)
async def instance(request: Request, instance_id: INSTANCE_ID) -> HTMLResponse:
    return _page(
        request, "instance.html", f"Instance {instance_id}", nav="fleet", instance_id=instance_id
    )
