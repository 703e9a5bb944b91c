"""The management API's surface is pinned: a change to a path, a parameter, a body or a status shows
up here as a diff against `openapi_management.json`, to be made on purpose (regenerate with
TENANTGATE_PIN_OPENAPI=1)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.procs import Gateway

PINNED = Path(__file__).with_name("openapi_management.json")


def surface(schema: dict[str, Any]) -> dict[str, Any]:
    """Per path and method: the parameters, the body's schema and the statuses, for /api/v1."""
    out: dict[str, Any] = {}
    for path, item in sorted(schema["paths"].items()):
        if not path.startswith("/api/v1/"):
            continue
        for method, op in sorted(item.items()):
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            out[f"{method.upper()} {path}"] = {
                "parameters": sorted(f"{p['in']}:{p['name']}{'' if p.get('required') else '?'}"
                                     for p in op.get("parameters", [])),
                "body": body.get("$ref", "").rsplit("/", 1)[-1] or body.get("type"),
                "statuses": sorted(op.get("responses", {})),
            }  # fmt: skip
    return out


def test_the_management_api_is_what_was_pinned(gw: Gateway) -> None:
    live = surface(httpx.get(gw.url + "/openapi.json").json())
    if os.environ.get("TENANTGATE_PIN_OPENAPI") == "1":
        PINNED.write_text(json.dumps(live, indent=1, sort_keys=True) + "\n")
    assert live == json.loads(PINNED.read_text())
