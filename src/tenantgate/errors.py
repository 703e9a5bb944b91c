"""The one error tree. Each class knows its HTTP status and OpenAI error `type`/`code`.

    GatewayError                      500 internal_error
    ├── InvalidRequest                400 invalid_request_error
    │   ├── BodyTooLarge              413
    │   ├── RequestTimeout            408 header_timeout | body_timeout
    │   └── HeadersTooLarge           431
    ├── AuthenticationFailed          401 invalid_api_key
    ├── PermissionDenied              403 permission_error
    ├── NotFound                      404 not_found
    │   └── ModelNotFound             404 model_not_found
    ├── Conflict                      409 conflict
    ├── RateLimited                   429 rate_limit_exceeded | tokens_limit_exceeded |
    │                                     concurrency_limit_exceeded | quota_exceeded | budget_exceeded
    ├── UpstreamError                 502 upstream_error
    ├── NoCapacity                    503 no_capacity
    ├── TooManyConnections            503 too_many_connections
    ├── StoreUnavailable              503 service_unavailable
    └── UpstreamTimeout               504 timeout

The edge (`api/errors.py`) renders them as `{"error": {"message", "type", "code", "param"}}`.
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    type = "internal_error"
    code: str | None = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers: dict[str, str] = {}
        self.extra: dict[str, str] = {}  # more fields for the error object, e.g. reset_at


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class BodyTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class RequestTimeout(InvalidRequest):
    """The client did not send its request in time (the server's own deadline)."""

    status = 408
    code = "request_timeout"


class HeadersTooLarge(InvalidRequest):
    status = 431
    code = "headers_too_large"


class MethodNotAllowed(InvalidRequest):
    status = 405
    code = "method_not_allowed"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class RateLimited(GatewayError):
    """A limit refused the request; `type` and `code` name which kind, Retry-After says when to retry."""

    status = 429
    type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, kind: str, retry_after_s: float, reset_at: str | None = None) -> None:
        super().__init__(message, code=kind)
        self.type = kind
        self.headers["Retry-After"] = str(max(1, round(retry_after_s + 0.5)))
        if reset_at is not None:
            self.extra["reset_at"] = reset_at


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamRefused(UpstreamError):
    """The engine refused or reset the connection before answering: saturated, or down."""

    code = "upstream_unreachable"


class NoCapacity(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "no_capacity"


class AddressBlocked(GatewayError):
    """The address kept presenting API keys that do not exist (auth/guessers.py)."""

    status = 429
    type = "rate_limit_exceeded"
    code = "too_many_invalid_keys"


class TooManyConnections(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "too_many_connections"


class ShuttingDown(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "shutting_down"


class ManagementStarting(GatewayError):
    """The management API is still being assembled after a start (app.py); the data plane serves."""

    status = 503
    type = "service_unavailable"
    code = "management_starting"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = "1"


class StoreUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "store_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"


class QueueFull(GatewayError):
    """The tenant already has as many requests waiting as its plan allows."""

    status = 429
    type = "rate_limit_exceeded"
    code = "queue_full"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(max(1, round(retry_after_s + 0.5)))


class QueueTimeout(GatewayError):
    """The request waited in the fair queue for the plan's whole queue timeout."""

    status = 504
    type = "timeout"
    code = "queue_timeout"


class ConfigurationError(Exception):
    """A setting the operator must fix before the gateway can start; the message names it."""


class ClientGone(Exception):
    """The client disconnected before a response started; nothing is sent."""
