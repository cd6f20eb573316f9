"""passageway.jsonlog: one JSON object per line, with the trace a line was logged in."""

from __future__ import annotations

import io
import json
import logging
import sys

from hypothesis import given, strategies as st

from passageway import JsonLogFormatter, install_json_logging, start_trace

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def record(message: str = "hello %s", args: tuple = ("world",), **extra) -> logging.LogRecord:
    logger = logging.getLogger("orders.api")
    made = logger.makeRecord("orders.api", logging.WARNING, __file__, 1, message, args, None, extra=extra or None)
    made.created = 1_780_000_000.25
    return made


def test_a_line_carries_the_trace_and_leads_to_its_page() -> None:
    formatter = JsonLogFormatter(service="orders", inspector_url="http://127.0.0.1:8081/")
    with start_trace(TRACEPARENT):
        line = formatter.format(record())
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-05-28T20:26:40.250Z",
        "level": "WARNING",
        "logger": "orders.api",
        "message": "hello world",
        "service": "orders",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "trace_url": "http://127.0.0.1:8081/traces/4bf92f3577b34da6a3ce929d0e0e4736",
    }


def test_outside_a_trace_there_are_no_trace_fields() -> None:
    line = json.loads(JsonLogFormatter(inspector_url="http://i").format(record()))
    assert not {"trace_id", "span_id", "trace_url", "service"} & line.keys()


def test_an_exception_is_one_string_field() -> None:
    formatter = JsonLogFormatter(service="orders")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        made = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = formatter.format(made)
    assert "\n" not in line
    exception = json.loads(line)["exception"]
    assert exception.startswith("Traceback") and "ValueError: bad\nthing" in exception


def test_extra_fields_are_kept_and_never_break_the_line() -> None:
    line = json.loads(JsonLogFormatter().format(record(order_id=42, payload=object(), level_hint="x")))
    assert line["order_id"] == 42
    assert line["payload"].startswith("<object object")
    assert line["level"] == "WARNING"


def test_extra_cannot_overwrite_the_trace_fields() -> None:
    with start_trace(TRACEPARENT):
        line = json.loads(JsonLogFormatter().format(record(trace_id="forged")))
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


@given(st.text(), st.text())
def test_any_message_and_logger_name_make_one_valid_line(message, name) -> None:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)
    line = JsonLogFormatter(service="s").format(made)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == message and parsed["logger"] == name


def test_install_logs_json_lines_to_the_stream(monkeypatch) -> None:
    monkeypatch.setenv("PASSAGEWAY_INSPECTOR_URL", "http://inspector:8081")
    stream = io.StringIO()
    logger = logging.getLogger("test_install_json")
    logger.propagate = False
    install_json_logging(service="billing", stream=stream, logger=logger)
    with start_trace(TRACEPARENT):
        logger.info("charged %d", 3)
    logger.debug("not shown at INFO")
    (line,) = stream.getvalue().splitlines()
    parsed = json.loads(line)
    assert parsed["message"] == "charged 3" and parsed["service"] == "billing"
    assert parsed["trace_url"] == "http://inspector:8081/traces/4bf92f3577b34da6a3ce929d0e0e4736"


def test_on_the_root_logger_uvicorn_speaks_json_and_httpx_is_quiet() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    access = logging.getLogger("uvicorn.access")
    saved_access = (list(access.handlers), access.level, access.propagate)
    access.addHandler(logging.StreamHandler(io.StringIO()))  # as uvicorn's log config does at --log-level info
    access.setLevel(logging.INFO)
    access.propagate = False
    stream = io.StringIO()
    try:
        install_json_logging(service="orders", stream=stream)
        access.info('127.0.0.1 - "GET /orders/1 HTTP/1.1" 200')
        logging.getLogger("httpx").info("HTTP Request: POST http://inspector/api/registry/heartbeat")
        (line,) = stream.getvalue().splitlines()
        assert json.loads(line)["logger"] == "uvicorn.access"
        assert not access.handlers and access.propagate
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        access.handlers[:], access.level, access.propagate = saved_access
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        logging.getLogger("httpcore").setLevel(logging.NOTSET)
