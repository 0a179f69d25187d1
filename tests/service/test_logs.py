"""The JSON log formatter: values keep the type of the argument their placeholder formats."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import threading
from collections.abc import Iterator
from enum import Enum

import pytest
import uvicorn
from fastapi import FastAPI

from balancer.service import logs
from tests.waiting import wait_for


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("balancer.test", logging.WARNING, __file__, 1, msg, args or None, exc_info)


def as_json(msg: str, *args: object, exc: bool = False) -> dict[str, object]:
    line = logs.JsonFormatter().format(record(msg, *args, exc=exc))
    assert "\n" not in line
    data = json.loads(line)
    assert isinstance(data, dict)
    return data


class Color(Enum):
    RED = "red"


def test_values_keep_the_type_of_their_argument() -> None:
    data = as_json(
        "event=migration_finished id=%s bytes=%d error=%r ok=%s ratio=%.3f n=%s fraction=%s color=%s",
        "abc",
        302256128,
        None,
        True,
        0.123456,
        7,
        0.5,
        Color.RED,
    )
    assert data["event"] == "migration_finished"
    assert data["bytes"] == 302256128
    assert data["error"] is None
    assert data["ok"] is True
    assert data["ratio"] == 0.123
    assert (data["n"], data["fraction"], data["color"]) == (7, 0.5, "red")
    assert data["id"] == "abc"
    assert (data["level"], data["logger"]) == ("warning", "balancer.test")
    assert "message" not in data


def test_a_repr_of_a_string_is_the_string_unquoted() -> None:
    data = as_json("event=x detail=%r error=%r", "it's 'quoted'", "libvirt: no")
    assert data["detail"] == "it's 'quoted'"
    assert data["error"] == "libvirt: no"


def test_text_mixed_with_placeholders_is_the_formatted_text() -> None:
    data = as_json("event=api_plan_%s actor=%s plan=%d", "approve", "ops", 3)
    assert data == {**data, "event": "api_plan_approve", "actor": "ops", "plan": 3}


def test_literals_are_strings_and_quoted_literals_are_unquoted() -> None:
    data = as_json("event=plan_skipped reason=first_sample detail='CPU rates need a second poll' n=%d", 1)
    assert data["reason"] == "first_sample"
    assert data["detail"] == "CPU rates need a second poll"
    assert data["n"] == 1


def test_a_percent_escape_is_not_a_placeholder() -> None:
    data = as_json("event=x share=%d%% host=%s", 50, "h1")
    assert (data["share"], data["host"]) == ("50%", "h1")


def test_field_names_of_the_envelope_are_not_overwritten() -> None:
    data = as_json("event=x level=%s message=%s", "deep", "hello")
    assert data["level"] == "warning"
    assert (data["level_"], data["message_"]) == ("deep", "hello")


def test_not_finite_floats_are_strings_so_the_line_stays_json() -> None:
    data = as_json("event=x eta=%.1f rate=%s", float("inf"), float("nan"))
    assert (data["eta"], data["rate"]) == ("inf", "nan")


def test_other_messages_are_kept_whole() -> None:
    data = as_json("Uvicorn running on %s://%s:%d (key=%s)", "http", "127.0.0.1", 8787, "v")
    assert data["message"] == "Uvicorn running on http://127.0.0.1:8787 (key=v)"
    assert "key" not in data


def test_a_template_that_does_not_match_its_arguments_falls_back_to_the_message() -> None:
    rec = record("event=x a=%s b=%s", "only-one")
    data = json.loads(logs.JsonFormatter().format(rec))
    assert data["message"] == "event=x a=%s b=%s ('only-one',)"  # as written, not a traceback
    assert "a" not in data


def test_an_exception_is_one_field() -> None:
    data = as_json("event=tick_failed error=%r", "boom", exc=True)
    assert data["error"] == "boom"
    exception = data["exception"]
    assert isinstance(exception, str)
    assert "RuntimeError: boom" in exception


@pytest.fixture
def json_root() -> Iterator[io.StringIO]:
    """logs.setup("json") writing into a buffer; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buffer = io.StringIO()
    stderr, sys.stderr = sys.stderr, buffer
    try:
        logs.setup("json", "info")
    finally:
        sys.stderr = stderr
    yield buffer
    root.handlers[:], root.level = saved


def test_uvicorn_lines_are_json_with_the_log_config_for_the_service(json_root: io.StringIO) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # What daemon/serve.py passes: log_config from logs.py, warnings and above.
    config = uvicorn.Config(
        FastAPI(), log_level="warning", log_config=logs.uvicorn_log_config(), lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for("uvicorn to start", lambda: server.started, timeout=20)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            conn.recv(1024)
        wait_for("uvicorn's warning", lambda: "Invalid HTTP request" in json_root.getvalue(), timeout=10)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    lines = [json.loads(line) for line in json_root.getvalue().splitlines()]
    warning = next(d for d in lines if "Invalid HTTP request" in str(d.get("message")))
    assert (warning["level"], warning["logger"]) == ("warning", "uvicorn.error")
    assert all(d["level"] != "info" for d in lines if d["logger"].startswith("uvicorn")), lines
