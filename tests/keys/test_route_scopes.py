"""Every route x every kind of caller: the table is the access policy, and a route missing from
it fails the first test (add the new route here with its scope: reads `read`, mutations `write`,
keys and instance delete/purge `admin`, probes and metrics `None` = public)."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.keys.auth import NoScopeDecision, api_routes, route_scope
from dbsize.keys.tokens import Scope, allows
from tests.conftest import bearer, make_key

R, W, A = Scope.read, Scope.write, Scope.admin

ROUTE_SCOPES: dict[tuple[str, str], Scope | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): None,
    ("GET", "/docs"): None,
    ("GET", "/redoc"): None,
    ("GET", "/problems/{slug}"): None,
    ("POST", "/v1/instances"): W,
    ("GET", "/v1/instances"): R,
    ("GET", "/v1/instances/{instance_id}"): R,
    ("PATCH", "/v1/instances/{instance_id}"): W,
    ("DELETE", "/v1/instances/{instance_id}"): A,
    ("POST", "/v1/size-samples"): W,
    ("GET", "/v1/instances/{instance_id}/size-samples"): R,
    ("POST", "/v1/aggregation-jobs"): W,
    ("GET", "/v1/aggregation-jobs"): R,
    ("GET", "/v1/aggregation-jobs/status-counts"): R,
    ("GET", "/v1/aggregation-jobs/{job_id}"): R,
    ("GET", "/v1/aggregation-jobs/{job_id}/instances"): R,
    ("GET", "/v1/aggregation-jobs/{job_id}/events"): R,
    ("POST", "/v1/aggregation-jobs/{job_id}/cancel"): W,
    ("POST", "/v1/aggregation-jobs/{job_id}/retry"): W,
    ("POST", "/v1/collection-jobs"): W,
    ("GET", "/v1/collection-jobs"): R,
    ("GET", "/v1/collection-jobs/{job_id}"): R,
    ("GET", "/v1/collection-jobs/{job_id}/instances"): R,
    ("GET", "/v1/collection-jobs/{job_id}/events"): R,
    ("POST", "/v1/collection-jobs/{job_id}/cancel"): W,
    ("POST", "/v1/collection-jobs/{job_id}/retry"): W,
    # Collecting or probing an instance connects to its server with its stored password.
    ("POST", "/v1/instances/{instance_id}/collect"): W,
    ("POST", "/v1/instances/{instance_id}/test-connection"): W,
    ("GET", "/v1/instances/{instance_id}/databases"): R,
    ("POST", "/v1/keys"): A,
    ("GET", "/v1/keys"): A,
    ("DELETE", "/v1/keys/{public_id}"): A,
    # The dashboard's page shells: no data in them, the browser fetches it with the user's key.
    ("GET", "/"): None,
    ("GET", "/ui"): None,
    ("GET", "/ui/jobs"): None,
    ("GET", "/ui/jobs/{job_id}"): None,
    ("GET", "/ui/fleet"): None,
    ("GET", "/ui/instances/{instance_id}"): None,
    ("GET", "/v1/statistics/databases"): R,
    ("GET", "/v1/statistics/instances"): R,
    ("GET", "/v1/statistics/instances/totals"): R,
    ("GET", "/v1/instances/{instance_id}/statistics"): R,
    ("GET", "/v1/instances/{instance_id}/databases/{database_name}/statistics"): R,
    ("GET", "/v1/statistics/top"): R,
    ("GET", "/v1/forecast"): R,
    ("GET", "/v1/freshness"): R,
    ("PUT", "/v1/instances/{instance_id}/databases/{database_name}/capacity"): W,
    ("DELETE", "/v1/instances/{instance_id}/databases/{database_name}/capacity"): W,
}

# Values for path parameters: nothing exists, so an admitted caller gets a 404/422, never data.
PATH_VALUES = {
    "{instance_id}": "987654",
    "{job_id}": str(uuid.UUID(int=7)),
    "{public_id}": "nosuchkey",
    "{database_name}": "nosuchdatabase",
}
# A body no route accepts: an admitted caller gets a 422 and nothing is created.
PROBE_BODY = {"probe_field_no_route_accepts": True}


def _routes(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    return {(method, path): route for method, path, route in api_routes(app)}


def _url(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace(name, value)
    return path


async def _call(client: AsyncClient, method: str, path: str, key: str | None) -> int:
    headers = bearer(key) if key else {}
    body = PROBE_BODY if method in {"POST", "PATCH", "PUT"} else None
    response = await client.request(method, _url(path), json=body, headers=headers)
    if response.status_code in {401, 403}:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith('Bearer realm="dbsize"')
    return response.status_code


class TestEveryRouteHasAScopeDecision:
    def test_the_table_lists_exactly_the_apps_routes(self, app: FastAPI) -> None:
        routes = set(_routes(app))
        missing = sorted(routes - set(ROUTE_SCOPES))
        stale = sorted(set(ROUTE_SCOPES) - routes)
        assert not missing, f"routes without a scope decision in ROUTE_SCOPES: {missing}"
        assert not stale, f"ROUTE_SCOPES lists routes the app no longer has: {stale}"

    def test_each_route_declares_the_tables_scope(self, app: FastAPI) -> None:
        wrong = []
        for key, route in _routes(app).items():
            try:
                declared = route_scope(route)
            except NoScopeDecision as exc:
                wrong.append(str(exc))
                continue
            if key in ROUTE_SCOPES and declared != ROUTE_SCOPES[key]:
                wrong.append(f"{key} declares {declared}, the table says {ROUTE_SCOPES[key]}")
        assert not wrong, "; ".join(wrong)


@pytest.mark.parametrize(
    ("method", "path", "required"),
    [(method, path, scope) for (method, path), scope in ROUTE_SCOPES.items()],
    ids=[f"{method} {path}" for method, path in ROUTE_SCOPES],
)
async def test_route_admits_exactly_the_keys_of_its_scope(
    app: FastAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    method: str,
    path: str,
    required: Scope | None,
) -> None:
    keys = {scope: await make_key(sessionmaker, scope) for scope in Scope}
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        outcomes = {"none": await _call(client, method, path, None)}
        for scope, key in keys.items():
            outcomes[scope.value] = await _call(client, method, path, key)
        outcomes["unknown"] = await _call(client, method, path, "dbs_" + "A" * 43)
    if required is None:
        assert all(code not in {401, 403} for code in outcomes.values()), outcomes
        return
    expected_refusals = {
        "none": 401,
        "unknown": 401,
        **{scope.value: 403 for scope in Scope if not allows(scope, required)},
    }
    refusals = {who: code for who, code in outcomes.items() if code in {401, 403}}
    assert refusals == expected_refusals, outcomes
