"""Platform realm: declarative configuration, applied and exported."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from tenantgate.api.deps import PlatformReader, PlatformWriter
from tenantgate.declarative import Applier, Document

router = APIRouter(tags=["declarative configuration"])


def applier(request: Request) -> Applier:
    service: Applier = request.app.state.applier
    return service


class Applied(BaseModel):
    changes: list[str]  # empty: no changes
    applied: bool  # false for a dry run
    keys: dict[str, str]  # "tenant/key name" -> the secret of each key created, shown once


@router.post("/apply")
async def apply(
    body: Document, caller: PlatformWriter, service: Annotated[Applier, Depends(applier)],
    dry_run: Annotated[bool, Query(description="Only say what would change")] = False,
) -> Applied:  # fmt: skip
    """Create and update tenants, their users and keys as the document says; nothing is deleted.
    Applying the same document again changes nothing."""
    plan = await service.apply(caller, body, dry_run)
    return Applied(changes=plan.changes, applied=not dry_run, keys=plan.secrets)


@router.get("/export")
async def export(_: PlatformReader, service: Annotated[Applier, Depends(applier)]) -> dict[str, object]:
    """Every tenant with its users and keys, as `apply` reads it; never a secret."""
    return await service.export()
