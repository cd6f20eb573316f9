"""Structured logging for services: one JSON object per line, carrying the current trace.

Each line holds the time (ISO 8601 UTC), level, logger, message, the service's name, and the
trace id and span id of the request being handled (passageway.current_trace()), so a log line
leads to its trace; with the inspector's address known, `trace_url` is that trace's page. An
exception's traceback is one string field; fields passed with `extra=` are kept.

Standard library only. `install_json_logging(service="orders")` sets it up on the root logger.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from typing import Any, TextIO

from .tracecontext import current_trace

INSPECTOR_URL_ENV = "PASSAGEWAY_INSPECTOR_URL"
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
CHATTY_LOGGERS = ("httpx", "httpcore")

# Attributes every LogRecord has: anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)
# uvicorn's `color_message` repeats the message with terminal colours: noise in JSON.
_DROPPED_EXTRAS = frozenset({"color_message"})
_OWN_FIELDS = ("time", "level", "logger", "message", "service", "trace_id", "span_id", "trace_url", "exception")


def trace_page_url(inspector_url: str, trace_id: str) -> str:
    """The inspector's page of a trace (its /traces/{trace_id})."""
    return f"{inspector_url.rstrip('/')}/traces/{trace_id}"


class JsonLogFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring for the fields)."""

    def __init__(self, *, service: str | None = None, inspector_url: str | None = None) -> None:
        super().__init__()
        self.service = service
        self.inspector_url = inspector_url.rstrip("/") if inspector_url else None

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.service:
            line["service"] = self.service
        if trace := current_trace():
            line["trace_id"] = trace.trace_id
            line["span_id"] = trace.parent_id
            if self.inspector_url:
                line["trace_url"] = trace_page_url(self.inspector_url, trace.trace_id)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in _OWN_FIELDS and key not in _DROPPED_EXTRAS and not key.startswith("_"):
                line[key] = value
        # default=str: an extra field of any type still logs (its str()), never raises in a handler.
        return json.dumps(line, ensure_ascii=False, default=str)


def install_json_logging(
    *,
    service: str | None = None,
    level: int | str = logging.INFO,
    inspector_url: str | None = None,
    stream: TextIO | None = None,
    logger: logging.Logger | None = None,
) -> logging.Handler:
    """Log as JSON lines to `stream` (stderr): replaces the handlers of `logger` (the root).

    On the root logger it also takes over uvicorn's loggers (their own handlers removed, so the
    server's lines are JSON too: call it at import time, after uvicorn configured them) and keeps
    httpx and httpcore at WARNING (at INFO httpx logs every request, each heartbeat included).
    The inspector's address defaults to $PASSAGEWAY_INSPECTOR_URL (for `trace_url`). Returns the
    handler."""
    target = logger or logging.getLogger()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonLogFormatter(service=service, inspector_url=inspector_url or os.environ.get(INSPECTOR_URL_ENV) or None)
    )
    for old in list(target.handlers):
        target.removeHandler(old)
    target.addHandler(handler)
    target.setLevel(level)
    if target is logging.getLogger():
        for name in SERVER_LOGGERS:
            server_logger = logging.getLogger(name)
            for old in list(server_logger.handlers):
                server_logger.removeHandler(old)
            server_logger.propagate = True
            server_logger.disabled = False  # a dictConfig with disable_existing_loggers may have silenced it
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(max(logging.WARNING, target.level))
    return handler
