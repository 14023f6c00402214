"""``/problems/<type>``: the page each problem ``type`` URI of the API points to.

RFC 9457 says a problem type URI should resolve to documentation for humans. The types are
relative references (``/problems/not-found``), resolved against the service that answered, so
they work on a network without internet and never point at a domain the operator does not own.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from dbsize.errors import PROBLEM_BASE, NotFound
from dbsize.keys.auth import public

# slug -> (title, what it means and what to do). Every type_slug the code uses is listed here;
# tests/test_problem_pages.py checks that for every DbsizeError class and job problem kind.
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "not-found": (
        "Not found",
        "The resource in the URL does not exist (or no longer exists). Check the id; lists such "
        "as GET /v1/instances show the ids that exist.",
    ),
    "conflict": (
        "Conflict",
        "The request contradicts the current state: a name already taken, an instance with size "
        "history deleted without purge=true, a job that is already finished. `detail` says which.",
    ),
    "invalid-input": (
        "Invalid input",
        "A parameter or the body does not match the schema, or holds text PostgreSQL cannot "
        "store (a NUL character, a lone surrogate). `errors` lists each bad field as a JSON "
        "pointer with what is wrong; nothing was written.",
    ),
    "payload-too-large": (
        "Payload too large",
        "The body is over the size limit (DBSIZE_MAX_BODY_BYTES) or a sample batch has more rows "
        "than DBSIZE_MAX_SAMPLES_PER_REQUEST. It was refused before it was parsed; split it.",
    ),
    "unsupported-media-type": (
        "Unsupported media type",
        "The body's Content-Type is not one the route reads (sample batches: application/json "
        "or text/csv).",
    ),
    "unauthorized": (
        "Unauthorized",
        "The route needs an API key: send `Authorization: Bearer <key>`.",
    ),
    "forbidden": (
        "Forbidden",
        "The API key is valid but its scope does not allow this route (read < write < admin).",
    ),
    "service-unavailable": (
        "Service unavailable",
        "PostgreSQL or Redis did not answer. Nothing was changed; retry after the number of "
        "seconds in the Retry-After header. GET /readyz shows which server is down.",
    ),
    "internal": (
        "Internal error",
        "A bug in dbsize: the request could not be answered. The server logged the details.",
    ),
    "period-failed": (
        "A period failed",
        "An aggregation job could not compute one of its period types; the job's "
        "`period_results` and `error` say which and why. Retry the job once the cause is fixed.",
    ),
    "worker-lost": (
        "Worker lost",
        "The worker running the job stopped heart-beating (killed, or its host died) and the job "
        "had no attempts left. Retry it.",
    ),
    "transient-retries-exhausted": (
        "Transient failures exhausted the retries",
        "The database kept failing with transient errors (connection lost, serialization) on "
        "every attempt. Check the database, then retry the job.",
    ),
    "job-error": (
        "Job error",
        "The job failed with an unexpected error; `detail` carries it. Retry it, and report it "
        "if it happens again.",
    ),
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title} - dbsize problem</title></head>
<body>
<h1>{title}</h1>
<p>{text}</p>
<p>Problem type <code>{uri}</code> of the dbsize API (RFC 9457 problem details).
See <a href="/docs">the API docs</a>.</p>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/problems/{slug}", dependencies=[public()])
async def problem_page(slug: str) -> HTMLResponse:
    if slug not in PROBLEM_TYPES:
        raise NotFound(f"no problem type {slug!r}")
    title, text = PROBLEM_TYPES[slug]
    uri = PROBLEM_BASE + slug
    return HTMLResponse(_PAGE.format(title=escape(title), text=escape(text), uri=escape(uri)))
