"""Every problem of a config as one line ``key.path: value <what is allowed>``, secrets masked.

Three sources, reported together in one pass: pydantic's errors (rendered here), the checks across
keys (duplicate host names, pins and excludes naming unknown hosts, bandwidth limits), which read
the raw YAML data so they run even when other keys are invalid, and, for the service, that hosts
are configured. Values that are secrets (tokens, a database password) are never shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import ValidationError

SECRET = "***"  # what a secret is shown as
SECRET_KEYS = frozenset({"token"})  # keys whose value is a secret wherever they appear
_URL_PASSWORD = re.compile(r"(?P<head>://[^:/@\s]*:)(?P<password>[^@\s]*)@")
_BOOL_HINT = "YAML reads unquoted yes/no/on/off/true/false as booleans: put the word in quotes"


# --------------------------------------------------------------------------- secrets
def mask_url(url: str) -> str:
    """``url`` with its password (``scheme://user:PASSWORD@host``) shown as ***."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{SECRET}@", url)


def redact(value: Any, key: str | None = None) -> Any:
    """``value`` with every secret masked: token values, and passwords inside URLs."""
    if key in SECRET_KEYS and value is not None:
        return SECRET
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return mask_url(value)
    return value


# --------------------------------------------------------------------------- pydantic's errors
def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after", "function-before"} or "[" in str(part):
            continue  # pydantic's validator wrappers, not keys the user wrote
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def allowed_text(err: dict[str, Any]) -> str:
    """What is allowed, in the words of config errors (the API's 422 bodies use it too)."""
    ctx = err.get("ctx") or {}
    kind = err["type"]
    table = {
        "greater_than_equal": lambda: f"is not >= {ctx.get('ge')}",
        "greater_than": lambda: f"is not > {ctx.get('gt')}",
        "less_than_equal": lambda: f"is not <= {ctx.get('le')}",
        "less_than": lambda: f"is not < {ctx.get('lt')}",
        "literal_error": lambda: f"is not one of {ctx.get('expected')}",
        "extra_forbidden": lambda: "is not a known key (check the spelling; see config.yaml for all keys)",
        "missing": lambda: "is required",
        "too_short": lambda: f"is too short: needs at least {ctx.get('min_length')} item(s)",
        "string_too_short": lambda: f"is too short: needs at least {ctx.get('min_length')} character(s)",
        "int_parsing": lambda: "is not an integer",
        "int_from_float": lambda: "is not an integer",
        "int_type": lambda: "is not an integer",
        "float_parsing": lambda: "is not a number",
        "float_type": lambda: "is not a number",
        "bool_parsing": lambda: "is not a boolean (true/false)",
        "bool_type": lambda: "is not a boolean (true or false, unquoted)",
        "model_type": lambda: "must be a mapping of keys to values",
        "dict_type": lambda: "must be a mapping of keys to values",
        "tuple_type": lambda: "must be a list",
        "list_type": lambda: "must be a list",
        "string_type": lambda: "must be a string",
        "path_type": lambda: "must be a file path (a string)",
    }
    if kind in table:
        return table[kind]()
    msg = str(err.get("msg", kind))
    return msg.removeprefix("Value error, ")


def _render(err: dict[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    path = _path(loc)
    allowed = allowed_text(err)
    if err["type"] in {"missing", "extra_forbidden"}:
        return f"{path}: {allowed}"
    value = err.get("input")
    key = str(loc[-1]) if loc else None
    if key in SECRET_KEYS and isinstance(value, str):
        shown = f"({SECRET}, {len(value)} characters)"
    else:
        value = redact(value)
        shown = repr(value) if isinstance(value, str) else _short(value)
    line = f"{path}: {shown} {allowed}"
    if isinstance(value, bool) and err["type"] in {"literal_error", "string_type"}:
        expected = str((err.get("ctx") or {}).get("expected", ""))
        word = "off" if value is False and "'off'" in expected else None
        line += f" ({_BOOL_HINT}" + (f', e.g. {path}: "{word}")' if word else ")")
    return line


def _short(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("...").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def problems_of(exc: ValidationError) -> list[str]:
    """One line per validation problem: ``key.path: value <what is allowed>``."""
    return [_render(dict(err)) for err in exc.errors(include_url=False)]


# --------------------------------------------------------------------------- across keys
def _items(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return list(value) if isinstance(value, list | tuple) else []


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def cross_problems(data: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """Problems across keys of the raw data; each check runs on whatever parts of it are readable.

    ``defaults`` holds the ``limits`` defaults (``bandwidth_mib_s``, ``host_bandwidth_mib_s``).
    """
    problems: list[str] = []
    names = [h.get("name") if isinstance(h, dict) else None for h in _items(data, "hosts")]
    for i, n in enumerate(names):
        if isinstance(n, str) and n in names[:i]:
            problems.append(f"hosts[{i}].name: {n!r} is a duplicate; host names must be unique")
    known = {n for n in names if isinstance(n, str)}
    rules = _section(data, "rules")
    if known:
        for i, pin in enumerate(_items(rules, "pins")):
            problems += _unknown(f"rules.pins[{i}].hosts", _items(pin, "hosts"), known, indexed=False)
        problems += _unknown("rules.exclude_hosts", _items(rules, "exclude_hosts"), known, indexed=True)
    limits = _section(data, "limits")
    per_move = _number(limits.get("bandwidth_mib_s", defaults["bandwidth_mib_s"]))
    per_host = _number(limits.get("host_bandwidth_mib_s", defaults["host_bandwidth_mib_s"]))
    if per_move is not None and per_host is not None and per_host < per_move:
        problems.append(
            f"limits.host_bandwidth_mib_s: {per_host} is below limits.bandwidth_mib_s ({per_move}); "
            "no migration could start"
        )
    return problems


def _unknown(where: str, names: Iterable[Any], known: set[str], *, indexed: bool) -> list[str]:
    return [
        f"{where}{f'[{i}]' if indexed else ''}: {h!r} is not a configured host"
        for i, h in enumerate(names)
        if isinstance(h, str) and h not in known
    ]
