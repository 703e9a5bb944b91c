"""The management API's exception handlers: whatever a route raises reaches the client in the OpenAI
error shape (error_responses.py), with no traceback."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from tenantgate.error_responses import error_body, error_response, internal_error_response
from tenantgate.errors import GatewayError
from tenantgate.storage.failures import as_gateway_error

log = logging.getLogger(__name__)


async def on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    type_ = "invalid_request_error" if exc.status_code < 500 else "internal_error"
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = str(exc.detail)
    if exc.status_code in (404, 405):
        message = f"{message}: {request.method} {request.url.path} (the API is described at /docs)."
    return Response(error_body(message, type_, code), status_code=exc.status_code, media_type="application/json")


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = f"Invalid request: {location or 'body'}: {first.get('msg', 'invalid value')}."
    return Response(
        error_body(message, "invalid_request_error", "invalid_request", location or None),
        status_code=400,
        media_type="application/json",
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    known = as_gateway_error(exc)
    if known is not None:  # the database: unreachable (503) or a value it refused (400); no traceback
        log.warning("%s %s: %s (%s)", request.method, request.url.path, known.message, type(exc).__name__)
        return error_response(known)
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error_response()
