"""Platform realm: incidents on the public status page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from tenantgate.api.deps import PlatformWriter
from tenantgate.api.schemas import _In
from tenantgate.domain import Incident, IncidentState
from tenantgate.incidents import StatusBoard

router = APIRouter(tags=["status"])


def status_board(request: Request) -> StatusBoard:
    board: StatusBoard = request.app.state.status_board
    return board


Board = Annotated[StatusBoard, Depends(status_board)]


Title = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


Message = Annotated[str, Field(max_length=4000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]


class IncidentIn(_In):
    title: Title
    message: Message = ""
    state: IncidentState = IncidentState.INVESTIGATING


class IncidentPatch(_In):
    state: IncidentState | None = None
    message: Message | None = None


class IncidentOut(BaseModel):
    id: str
    title: str
    message: str
    state: IncidentState
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, i: Incident) -> IncidentOut:
        return cls(id=i.id, title=i.title, message=i.message, state=i.state, created_at=i.created_at,
                   updated_at=i.updated_at, resolved_at=i.resolved_at)  # fmt: skip


@router.get("/incidents")
async def list_incidents(board: Board) -> list[IncidentOut]:
    """Public, as the status page: open incidents and those resolved in the last 7 days, newest first."""
    return [IncidentOut.of(i) for i in await board.shown()]


@router.post("/incidents", status_code=201)
async def post_incident(body: IncidentIn, caller: PlatformWriter, board: Board) -> IncidentOut:
    return IncidentOut.of(await board.post(caller, body.title, body.message, body.state))


@router.patch("/incidents/{incident_id}")
async def update_incident(incident_id: str, body: IncidentPatch, caller: PlatformWriter, board: Board) -> IncidentOut:
    """A new state (resolved closes it) and, if given, a new message."""
    return IncidentOut.of(await board.update(caller, incident_id, body.state, body.message))
