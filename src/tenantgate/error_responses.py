"""Any GatewayError in the OpenAI error shape, for every edge: the data plane, the management API and
the tenant proxy. It imports neither FastAPI nor the storage layer, so the data plane does not either."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from tenantgate.errors import GatewayError


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
