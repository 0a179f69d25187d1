"""Logging: one line per event, ``event=... key=value`` text or one JSON object per line.

Code logs ``log.info("event=move_planned vm=%s bytes=%d ...", vm, n)``. The JSON formatter reads
the pairs from that *template* and takes each value from the argument its placeholder formats, so
the types survive: ``%d`` stays an int, ``%.1f`` a float (rounded as the text shows it), a None a
null, a bool a bool, a str (``%s`` or ``%r``) a string. A value that mixes text and placeholders
(``event=api_plan_%s``) is the formatted text; a literal (``reason=in_flight``) is a string.
Messages without pairs (other libraries', uvicorn's) become ``{"message": ...}``. Both formats carry
the same facts: the text line is ``record.getMessage()`` unchanged.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
import sys
import time
from collections.abc import Mapping
from enum import Enum
from typing import Any

# One printf placeholder as the logging module formats it (``%s``, ``%d``, ``%.1f``, ``%(name)s``).
_PLACEHOLDER = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?"
    r"(?P<conv>[diouxXeEfFgGcrsa%])"
)
# A ``key=value`` pair of the template: a quoted literal or a run of non-blank characters.
_PAIR = re.compile(r"""(?:^|(?<=\s))(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)""")
RESERVED = ("ts", "level", "logger", "message", "exception", "stack")


class _Unparsed(Exception):
    """The template and its arguments do not pair up; the formatter falls back to the message."""


def _typed(arg: object, conv: str, precision: str | None) -> object:
    """The JSON value of ``arg`` formatted by one placeholder."""
    if arg is None or isinstance(arg, bool):
        return arg
    if isinstance(arg, Enum) and isinstance(arg.value, str | int | float):
        return arg.value
    if conv in "diu" and isinstance(arg, int | float):
        return int(arg)
    if conv in "fFeEgG" and isinstance(arg, int | float):
        value = float(arg)
        return round(value, int(precision)) if precision and precision != "*" and conv in "fF" else value
    if conv in "sr" and isinstance(arg, int | float | str):
        return arg
    return ("%" + conv) % (arg,)


def _template_args(record: logging.LogRecord) -> tuple[tuple[object, ...], Mapping[str, object] | None]:
    args = record.args
    if isinstance(args, Mapping):
        return (), args
    if args is None:
        return (), None
    return tuple(args), None


def typed_fields(record: logging.LogRecord) -> dict[str, object]:
    """The ``key=value`` pairs of an ``event=...`` template, each value typed from its argument.

    Empty for any other message. Raises _Unparsed when placeholders and ``record.args`` do not pair up.
    """
    template = record.msg
    if not isinstance(template, str) or not template.startswith("event="):
        return {}
    positional, named = _template_args(record)
    slots: dict[int, tuple[re.Match[str], object]] = {}  # placeholder start -> (placeholder, its argument)
    index = 0
    for m in _PLACEHOLDER.finditer(template):
        if m.group("conv") == "%":
            continue
        if "*" in m.group(0):
            raise _Unparsed("'*' width or precision")
        if m.group("name") is not None:
            if named is None or m.group("name") not in named:
                raise _Unparsed("a named placeholder without its argument")
            slots[m.start()] = (m, named[m.group("name")])
            continue
        if index >= len(positional):
            raise _Unparsed("more placeholders than arguments")
        slots[m.start()] = (m, positional[index])
        index += 1
    if named is None and index != len(positional):
        raise _Unparsed("more arguments than placeholders")

    out: dict[str, object] = {}
    for pair in _PAIR.finditer(template):
        key, raw = pair.group(1), pair.group(2)
        start, end = pair.span(2)
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            start, end = start + 1, end - 1  # a quoted value: look inside the quotes
        inside = sorted((pos, slot) for pos, slot in slots.items() if start <= pos < end)
        if not inside:
            out[key] = _literal(raw)
        elif len(inside) == 1 and inside[0][0] == start and inside[0][1][0].end() == end:
            m, arg = inside[0][1]
            out[key] = _typed(arg, m.group("conv"), m.group("precision"))
        else:  # text and placeholders mixed: the text as logged
            text = template[start:end]
            out[key] = text % (named if named is not None else tuple(slot[1] for _, slot in inside))
    return out


def _literal(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw[1:-1]
        return str(value)
    return raw


def _json_safe(value: object) -> object:
    """NaN and infinities are not JSON: they are logged as the strings Python prints."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):  # a bad call site still gives one JSON line, not a traceback
        return f"{record.msg} {record.args!r}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, then the typed pairs or ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        try:
            pairs = typed_fields(record)
        except (_Unparsed, TypeError, ValueError, KeyError):
            pairs = {}
        if pairs:
            for key, value in pairs.items():
                data[f"{key}_" if key in RESERVED else key] = _json_safe(value)
        else:
            data["message"] = _message(record)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup(fmt: str = "text", level: str = "info") -> None:
    """Send every logger's records (ours, the libraries', uvicorn's) to one stderr handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def uvicorn_log_config() -> dict[str, Any]:
    """``uvicorn.Config(log_config=...)``: uvicorn's loggers keep no handler of their own and propagate
    to the root handler that :func:`setup` installed, so their lines are JSON in JSON mode too.

    uvicorn's default config gives ``uvicorn`` and ``uvicorn.access`` their own plain-text handlers
    (``propagate: False``); this undoes that even when another uvicorn.Config in the process set them.
    """
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in names},
    }
