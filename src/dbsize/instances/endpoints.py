from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from dbsize.db import RequestSession
from dbsize.instances.models import DbType
from dbsize.instances.schemas import InstanceCreate, InstanceRead, InstanceUpdate
from dbsize.instances.service import InstanceService
from dbsize.keys.auth import requires
from dbsize.keys.tokens import Scope
from dbsize.openapi_docs import problem_responses
from dbsize.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Page,
    decode_cursor,
    encode_cursor,
)
from dbsize.params import InstanceIdPath
from dbsize.secret_box import SecretBox

router = APIRouter(prefix="/v1/instances", tags=["instances"])

Session = RequestSession


async def _secret_box(request: Request) -> SecretBox:
    return SecretBox.from_settings(request.app.state.settings)


Box = Annotated[SecretBox, Depends(_secret_box)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=InstanceRead,
    dependencies=[requires(Scope.write)],
    responses=problem_responses(409, 413, 422, 503),
)
async def create_instance(
    body: InstanceCreate, session: Session, box: Box, response: Response
) -> InstanceRead:
    """Register a database instance. Names are unique (409 otherwise).

    The connection fields are what collection uses (`POST /v1/collection-jobs`); the password is
    write-only and stored encrypted (422 when the service has no DBSIZE_SECRET_KEY)."""
    instance = await InstanceService(session, box).create(body)
    response.headers["Location"] = f"/v1/instances/{instance.id}"
    return InstanceRead.model_validate(instance)


@router.get(
    "",
    response_model=Page[InstanceRead],
    dependencies=[requires(Scope.read, in_request_session=True)],
    responses=problem_responses(422, 503),
)
async def list_instances(
    session: Session,
    db_type: DbType | None = None,
    is_active: bool | None = None,
    name: Annotated[str | None, Query(description="Case-insensitive substring of the name")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[InstanceRead]:
    """List instances ordered by id, `limit` at most 500 per page."""
    after_id = int(decode_cursor(cursor, 1)[0]) if cursor else None
    rows = await InstanceService(session).list(
        after_id=after_id, limit=limit + 1, db_type=db_type, is_active=is_active, name_contains=name
    )
    items = [InstanceRead.model_validate(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor, limit=limit)


@router.get(
    "/{instance_id}",
    response_model=InstanceRead,
    dependencies=[requires(Scope.read, in_request_session=True)],
    responses=problem_responses(404, 422, 503),
)
async def get_instance(instance_id: InstanceIdPath, session: Session) -> InstanceRead:
    return InstanceRead.model_validate(await InstanceService(session).get(instance_id))


@router.patch(
    "/{instance_id}",
    response_model=InstanceRead,
    dependencies=[requires(Scope.write)],
    responses=problem_responses(404, 409, 413, 422, 503),
)
async def update_instance(
    instance_id: InstanceIdPath, body: InstanceUpdate, session: Session, box: Box
) -> InstanceRead:
    """Change an instance. `{"is_active": false}` deactivates it and keeps its history;
    `{"password": null}` removes the stored password."""
    instance = await InstanceService(session, box).update(instance_id, body)
    return InstanceRead.model_validate(instance)


@router.delete(
    "/{instance_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[requires(Scope.admin)],
    responses=problem_responses(404, 409, 422, 503),
)
async def delete_instance(
    instance_id: InstanceIdPath,
    session: Session,
    purge: Annotated[bool, Query(description="Also erase its samples and statistics")] = False,
) -> Response:
    """Delete an instance. One with size history answers 409 unless `purge=true`."""
    await InstanceService(session).delete(instance_id, purge=purge)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
