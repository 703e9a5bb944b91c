"""Logging: the server's and tenantgate's lines, as text or as one JSON object a line
(`TENANTGATE_LOG_FORMAT=json`), each carrying the request id and the tenant of the request it
belongs to once the data plane knows them. Never a secret or a prompt: nothing logs them, and
tests/e2e/test_no_secrets_in_logs.py reads the logs to make sure.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

_request: ContextVar[tuple[str, str] | None] = ContextVar("tenantgate_request", default=None)


def bind_request(request_id: str, tenant: str) -> None:
    """The lines logged from here on, in this request's task, name the request and its tenant."""
    _request.set((request_id, tenant))


class RequestContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        bound = _request.get()
        record.request_id, record.tenant = bound if bound is not None else (None, None)
        record.__dict__.pop("color_message", None)  # uvicorn's terminal colours: not for a log file
        return True


def log_config(format_: str, level: str) -> dict[str, Any]:
    """A logging.config.dictConfig for uvicorn's `log_config`: its loggers and tenantgate's, alike."""
    level = level.upper()
    filters = {"request": {"()": RequestContext}}
    if format_ == "json":
        fields = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant)s"
        json_formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter", "fmt": fields,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }  # fmt: skip
        formatters = {"default": json_formatter, "access": json_formatter}
    else:
        formatters = {
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(name)s: %(message)s"},
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            },
        }
    handlers = {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                    "filters": ["request"]},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                   "filters": ["request"]},
    }  # fmt: skip
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": filters,
        "formatters": formatters,
        "handlers": handlers,
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
            "tenantgate": {"handlers": ["default"], "level": level, "propagate": False},
        },
    }
