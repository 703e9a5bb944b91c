"""What a database failure means to the caller: the database is unreachable (503, retry) or a value
did not fit it (400). The API edge asks here, so SQLAlchemy's exceptions stay in the storage layer."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from tenantgate.errors import GatewayError, InvalidRequest, StoreUnavailable

_UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, ConnectionError, TimeoutError)


def _refused_text(error: BaseException) -> bool:
    """PostgreSQL refuses a NUL character in text (asyncpg reports it as a plain DBAPI error)."""
    return isinstance(error, sa_exc.DBAPIError) and "invalid byte sequence" in str(error.orig)


def as_gateway_error(error: BaseException) -> GatewayError | None:
    """The client-facing error for a storage failure; None when `error` is not one."""
    if isinstance(error, sa_exc.DataError) or _refused_text(error):
        return InvalidRequest("A value is too long, out of range or not text the database takes; correct it.")
    if isinstance(error, _UNREACHABLE) or (isinstance(error, OSError) and error.errno is not None):
        return StoreUnavailable("The database is unreachable right now; retry shortly.")
    return None
