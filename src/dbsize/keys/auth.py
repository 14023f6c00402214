"""Route scopes: the dependency every route declares, and the 401/403 problems it answers.

A route states its scope with ``dependencies=[requires(Scope.write)]`` (or ``public()`` for the
probes and metrics). ``route_scope`` reads that decision back, so the route x scope table test
and the OpenAPI responses come from the same declaration.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.config import Settings
from dbsize.db import RequestSession, session_scope
from dbsize.errors import DbsizeError
from dbsize.keys.repository import Caller
from dbsize.keys.service import KeyService
from dbsize.keys.tokens import Scope, allows
from dbsize.openapi_docs import problem_declaration

REALM = 'Bearer realm="dbsize"'

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="dbs_…",
    description="An API key (`dbsize keys create`): `Authorization: Bearer dbs_…`.",
)


class Unauthorized(DbsizeError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"


class Forbidden(DbsizeError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class ScopeRequirement:
    """A dependency that admits a caller whose key has ``scope`` (or a wider one)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Caller | None:
        return await self.admit(request, credentials, None)

    async def admit(
        self,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None,
        session: AsyncSession | None,
    ) -> Caller | None:
        """The caller, or 401/403. The key is checked in ``session``, else in a transaction of
        its own (a route that opens its sessions itself, e.g. a long poll that must not hold
        one while it waits)."""
        settings: Settings = request.app.state.settings
        if credentials is None:
            if self.scope is Scope.read and settings.public_reads:
                return None
            raise Unauthorized(
                "this route needs an API key: send `Authorization: Bearer <key>`",
                headers={"WWW-Authenticate": REALM},
            )
        if session is None:
            async with session_scope(request.app.state.sessionmaker) as own:
                caller = await KeyService(own).authenticate(credentials.credentials)
        else:
            caller = await KeyService(session).authenticate(credentials.credentials)
        if caller is None:
            # Never echo the presented key: it may be a real key pasted in the wrong place.
            raise Unauthorized(
                "the API key is unknown or revoked",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        if not allows(caller.scope, self.scope):
            raise Forbidden(
                f"this route needs a key with scope {self.scope.value!r}; "
                f"key {caller.public_id} has {caller.scope.value!r}",
                headers={
                    "WWW-Authenticate": (
                        f'{REALM}, error="insufficient_scope", scope="{self.scope.value}"'
                    )
                },
            )
        request.state.caller = caller
        return caller


class SessionScopeRequirement(ScopeRequirement):
    """The same check, made in the request's own transaction (:data:`RequestSession`, which
    FastAPI gives the route too: one session per request), for routes that read in it: one
    connection checkout, BEGIN and COMMIT per request instead of two. The key's last-used
    time (written at most once a minute) then commits with the request, so a request that
    fails does not record it."""

    async def __call__(  # type: ignore[override]
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        session: RequestSession,
    ) -> Caller | None:
        return await self.admit(request, credentials, session)


class PublicRoute:
    """The decision that a route is open to anyone (no security requirement in the spec)."""

    scope = None

    async def __call__(self) -> None:
        return None


_REQUIREMENTS = {scope: ScopeRequirement(scope) for scope in Scope}
_IN_SESSION = {scope: SessionScopeRequirement(scope) for scope in Scope}
_PUBLIC = PublicRoute()


def requires(scope: Scope, *, in_request_session: bool = False) -> Any:
    """``dependencies=[requires(Scope.write)]``: the route's scope decision. With
    ``in_request_session``, the key is checked in the route's :data:`RequestSession` (for
    routes that take one; a route that does not would open it just for the check)."""
    return Depends((_IN_SESSION if in_request_session else _REQUIREMENTS)[scope])


def public() -> Any:
    """``dependencies=[public()]``: the route is open to anyone, by decision (probes, metrics)."""
    return Depends(_PUBLIC)


class NoScopeDecision(Exception):
    pass


def route_scope(route: APIRoute) -> Scope | None:
    """The route's declared scope (None = public). Raises NoScopeDecision for a route that
    declared neither, so an undecided route cannot pass for a public one."""
    for dependency in route.dependencies:
        if isinstance(dependency, DependsParam) and isinstance(
            dependency.dependency, ScopeRequirement | PublicRoute
        ):
            return dependency.dependency.scope
    raise NoScopeDecision(f"{sorted(route.methods or ())} {route.path} has no scope decision")


def api_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """(method, full path, route) for every API route, through included routers."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.16x: included routes are flattened into app.routes
        flat = [(route.path, route) for route in app.routes if isinstance(route, APIRoute)]
    else:
        flat = [
            (str(context.path), context.original_route)
            for context in iter_route_contexts(app.routes)
            if isinstance(context.original_route, APIRoute)
        ]
    return [(method, path, route) for path, route in flat for method in route.methods or ()]


def declare_auth_responses(router: APIRouter) -> APIRouter:
    """Add the 401/403 problems to every route of ``router`` that requires a key, from its
    declaration; call it before ``include_router`` (included routes copy their responses).
    Routes without a decision are left alone (the route x scope test names them)."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        try:
            scope = route_scope(route)
        except NoScopeDecision:
            continue
        if scope is None:
            continue
        route.responses.setdefault(
            401, problem_declaration("Missing, unknown or revoked API key", 401)
        )
        if scope is not Scope.read:
            route.responses.setdefault(
                403, problem_declaration(f"The key's scope is narrower than {scope.value!r}", 403)
            )
    return router
