"""Bulk changes from the console: a tenants document (what `tenantgate apply` reads, YAML or JSON)
previewed as a list of changes, then applied through the same `Applier`."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from tenantgate.api.deps import PlatformWriter
from tenantgate.api.platform.declarative import Applied, applier
from tenantgate.declarative import Applier, Document
from tenantgate.errors import InvalidRequest

router = APIRouter(include_in_schema=False)


class DocumentText(BaseModel):
    text: str = Field(min_length=1, max_length=500_000)
    dry_run: bool = True


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors' aliases: a few lines of them can stand for an enormous document."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise InvalidRequest(f"Line {mark.line + 1}: aliases (*name) are not accepted here.", param="text")
        return super().compose_node(parent, index)


def parse(text: str) -> Document:
    try:
        raw = yaml.load(text, Loader=_NoAliases)  # noqa: S506 - a SafeLoader that also refuses aliases
    except (ValueError, RecursionError) as exc:  # a date like 2024-02-30, a 5,000-digit number, deep nesting
        raise InvalidRequest(
            f"Not a tenants document: {str(exc)[:200] or 'nested too deeply'}.", param="text"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"Line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML or JSON"
        raise InvalidRequest(f"{where}{problem}.", param="text") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tenants"), dict):
        raise InvalidRequest("Expected a 'tenants' map (slug: settings), as tenantgate export writes.", param="text")
    try:
        return Document.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{where}: {first['msg']}.", param="text") from None


@router.post("/ui/apply")
async def apply_text(
    body: DocumentText, caller: PlatformWriter, service: Annotated[Applier, Depends(applier)]
) -> Applied:
    """What the document would change (`dry_run`, the default), or the change itself."""
    document = await run_in_threadpool(parse, body.text)  # a megabyte of YAML takes seconds to parse
    plan = await service.apply(caller, document, body.dry_run)
    return Applied(changes=plan.changes, applied=not body.dry_run, keys=plan.secrets)
