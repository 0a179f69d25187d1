"""Logging: one line per event, ``event=... key=value`` text or one JSON object per line.

Code logs ``log.info("event=move_planned vm=%s ...", ...)``; the JSON formatter turns those
key=value pairs into fields, so both formats carry the same facts (which host, VM, move, why).
"""

from __future__ import annotations

import ast
import json
import logging
import re
import sys
import time

_PAIR = re.compile(r"""(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)""")


def fields(message: str) -> dict[str, object]:
    """The key=value pairs of a log message; quoted values (from %r) are unquoted."""
    out: dict[str, object] = {}
    for key, raw in _PAIR.findall(message):
        value: object = raw
        if raw[:1] in "'\"":
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw[1:-1]
        out[key] = value
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        data: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        parsed = fields(message)
        data.update(parsed if parsed else {"message": message})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup(fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
