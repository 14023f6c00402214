"""HTTP for API keys (admin scope): create (the key shown once), list, revoke."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from dbsize.db import RequestSession
from dbsize.keys.auth import requires
from dbsize.keys.schemas import KeyCreate, KeyCreated, KeyRead
from dbsize.keys.service import KeyService
from dbsize.keys.tokens import Scope
from dbsize.openapi_docs import Problem

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Session = RequestSession
PublicId = Annotated[str, Path(min_length=1, max_length=32, description="The key's public id")]

_UNAVAILABLE = {
    "model": Problem,
    "description": "PostgreSQL unreachable; retry after `Retry-After` seconds",
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    dependencies=[requires(Scope.admin)],
    responses={
        422: {"model": Problem, "description": "Invalid name or scope"},
        503: _UNAVAILABLE,
    },
)
async def create_key(body: KeyCreate, session: Session, response: Response) -> KeyCreated:
    """Create a key. The response carries the key itself, this once only."""
    created = await KeyService(session).create(name=body.name, scope=body.scope)
    response.headers["Location"] = f"/v1/keys/{created.record.public_id}"
    response.headers["Cache-Control"] = "no-store"
    return KeyCreated.model_validate(
        {**KeyRead.model_validate(created.record).model_dump(), "key": created.key}
    )


@router.get(
    "",
    response_model=list[KeyRead],
    dependencies=[requires(Scope.admin)],
    responses={422: {"model": Problem, "description": "Invalid query"}, 503: _UNAVAILABLE},
)
async def list_keys(
    session: Session,
    include_revoked: Annotated[bool, Query(description="Also list revoked keys")] = False,
) -> Sequence[KeyRead]:
    """Every key (never the key itself, nor its hash), oldest first."""
    keys = await KeyService(session).list(include_revoked=include_revoked)
    return [KeyRead.model_validate(key) for key in keys]


@router.delete(
    "/{public_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[requires(Scope.admin)],
    responses={
        404: {"model": Problem, "description": "No key with this id"},
        409: {"model": Problem, "description": "Already revoked, or the last active admin key"},
        422: {"model": Problem, "description": "Invalid id"},
        503: _UNAVAILABLE,
    },
)
async def revoke_key(public_id: PublicId, session: Session) -> Response:
    """Revoke a key: it is refused from the next request on."""
    await KeyService(session).revoke(public_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
