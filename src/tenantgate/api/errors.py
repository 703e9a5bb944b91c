"""Render any GatewayError as the OpenAI error shape; nothing else ever reaches a client."""

from __future__ import annotations

import logging

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from tenantgate.errors import GatewayError
from tenantgate.storage.failures import as_gateway_error

log = logging.getLogger(__name__)


def error_body(
    message: str, type_: str, code: str | None, param: str | None = None, extra: dict[str, str] | None = None
) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": param, **(extra or {})}})


def error_response(error: GatewayError, request_id: str | None = None) -> Response:
    response = Response(
        error_body(error.message, error.type, error.code, error.param, error.extra),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )
    if request_id:
        response.headers["x-request-id"] = request_id
    return response


def internal_error(request_id: str | None = None) -> GatewayError:
    message = "The gateway failed to handle this request; it has been logged"
    message += f" as {request_id}." if request_id else "."
    return GatewayError(message)


def internal_error_response(request_id: str | None = None) -> Response:
    return error_response(internal_error(request_id), request_id)


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
