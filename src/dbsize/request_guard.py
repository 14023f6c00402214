"""What every request must satisfy before a route parses it (a pure ASGI middleware).

- **Size**: a body over ``DBSIZE_MAX_BODY_BYTES`` is answered 413 before any of it is parsed
  (from ``Content-Length``, or counted while it streams in).
- **Text PostgreSQL cannot store**: a NUL character (U+0000) or a lone UTF-16 surrogate (a JSON
  ``\\ud800`` escape without its pair) in the JSON body, the query string or the path is answered
  422 naming the field, for every route, so no route can hand such text to the database (where it
  was a 500). The well-formed case costs one scan of the body's bytes for ``\\u`` escapes that
  could decode to either; only a hit pays for parsing the body to find the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dbsize.errors import PROBLEM_MEDIA_TYPE, problem

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Escapes that decode to U+0000 or to a surrogate (paired ones are legitimate: an emoji).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text`` (None if it can)."""
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "contains a NUL character (U+0000), which cannot be stored"
    return f"contains a lone surrogate (U+{ord(match.group()):04X}), which is not valid Unicode"


def _strings(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), key  # a key is text too
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, str(index)))


def _pointer(parts: tuple[str, ...]) -> str:
    escaped = (part.replace("~", "~0").replace("/", "~1") for part in parts)
    return "#/" + "/".join(escaped)


def json_body_errors(body: bytes) -> list[dict[str, str]]:
    """One error per string of a JSON body that PostgreSQL cannot store (pointer + detail)."""
    if _SUSPECT_ESCAPE.search(body) is None:
        return []
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []  # not JSON: the route's own parsing answers that
    errors = []
    for path, text in _strings(document, ("body",)):
        reason = unstorable(text)
        if reason is not None:
            # ``#`` and ``/`` stay readable; the pointer must not itself carry the bad character.
            errors.append({"pointer": _UNSTORABLE.sub("?", _pointer(path)), "detail": reason})
    return errors


def csv_body_errors(body: bytes) -> list[dict[str, Any]]:
    """A NUL byte in a CSV body (raw UTF-8 cannot carry a surrogate), with its line."""
    at = body.find(b"\x00")
    if at < 0:
        return []
    line = body.count(b"\n", 0, at) + 1
    return [
        {
            "pointer": "#/body",
            "line": line,
            "detail": "contains a NUL character (U+0000), which cannot be stored",
        }
    ]


def query_errors(query_string: bytes, path: str) -> list[dict[str, str]]:
    errors = []
    if "\x00" in path:
        errors.append({"pointer": "#/path", "detail": "contains a NUL character (U+0000)"})
    if b"%00" in query_string or b"\x00" in query_string:
        query = query_string.decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True):
            reason = unstorable(name + value)
            if reason is not None:
                shown = _UNSTORABLE.sub("?", name)
                errors.append({"pointer": f"#/query/{shown}", "detail": reason})
    return errors


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = query_errors(scope.get("query_string", b""), scope["path"])
        if errors:
            await _invalid(scope, errors)(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, int(declared))(scope, receive, send)
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        body, more = await self._read(receive)
        if more:
            await self._too_large(scope, None)(scope, receive, send)
            return
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type in (b"text/csv", b"application/csv"):
            errors = csv_body_errors(body)
        else:
            errors = json_body_errors(body)
        if errors:
            await _invalid(scope, errors)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        """The whole body, or (what was read, True) once it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    def _too_large(self, scope: Scope, declared: int | None) -> JSONResponse:
        size = f"{declared} bytes" if declared is not None else "over the limit"
        body = problem(
            413,
            "Payload too large",
            f"the body is {size}; the limit is {self.max_body_bytes} bytes (DBSIZE_MAX_BODY_BYTES)",
            type_slug="payload-too-large",
            instance=scope["path"],
        )
        # The rest of the body is not read: the connection is closed after the answer.
        return JSONResponse(
            body, 413, media_type=PROBLEM_MEDIA_TYPE, headers={"Connection": "close"}
        )


def _invalid(scope: Scope, errors: list[dict[str, Any]]) -> JSONResponse:
    body = problem(
        422,
        "Invalid input",
        "The request has text PostgreSQL cannot store; see errors.",
        type_slug="invalid-input",
        instance=scope["path"].replace("\x00", "?"),
        errors=errors,
    )
    return JSONResponse(body, 422, media_type=PROBLEM_MEDIA_TYPE)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as the route expects

    return replayed
