"""Check a dashboard JSON against Grafana's dashboard schema, as grafana-foundation-sdk encodes it.

Grafana defines the dashboard schema in CUE (kinds/dashboard, and one schema per panel plugin and data
source); it ships no JSON Schema. grafana-foundation-sdk (PyPI, generated from that CUE for one Grafana
version) has a typed class for every object: Dashboard, Panel, GridPos, each panel plugin's Options and
FieldConfig, the Prometheus query. ``problems(dashboard)`` decodes the JSON into those classes and reports

* every key the schema does not know (it is dropped when the model is encoded back to JSON), and
* every value whose type does not match the class's annotation (enums, literals, int/str/bool/float,
  lists, nested objects).

The SDK's decoders do not validate on their own; this walker adds that on top of their annotations.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models.dashboard import Dashboard

plugins.register_default_plugins()


def problems(dashboard: dict[str, Any]) -> list[str]:
    """Schema problems of ``dashboard`` (a parsed dashboard JSON), as ``$.json.path: what``; [] when valid."""
    model = Dashboard.from_json(dashboard)
    encoded = json.loads(json.dumps(model, cls=JSONEncoder))
    return _unknown_keys(dashboard, encoded, "$") + _type_errors(model, "$")


def _unknown_keys(given: Any, encoded: Any, path: str) -> list[str]:
    out: list[str] = []
    if isinstance(given, dict) and isinstance(encoded, dict):
        for key, value in given.items():
            if key not in encoded:
                if value is not None:  # an optional field set to null is dropped, and that is fine
                    out.append(f"{path}.{key}: not a field of the schema")
            else:
                out += _unknown_keys(value, encoded[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(encoded, list) and len(given) == len(encoded):
        for i, (g, e) in enumerate(zip(given, encoded, strict=True)):
            out += _unknown_keys(g, e, f"{path}[{i}]")
    return out


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a forward reference the SDK cannot resolve: check what can be
        return {}


def _is_model(value: Any) -> bool:
    return hasattr(value, "to_json") and bool(_hints(type(value)))


def _type_errors(obj: Any, path: str) -> list[str]:
    """Check each annotated attribute of a model object, recursively."""
    if isinstance(obj, UnknownDataquery):
        return [f"{path}: a query of a data source type the schema does not know: {obj.data}"]
    out: list[str] = []
    for name, hint in _hints(type(obj)).items():
        if name.startswith("_") or not hasattr(obj, name):
            continue
        out += _check(getattr(obj, name), hint, f"{path}.{name}")
    return out


def _check(value: Any, hint: Any, path: str) -> list[str]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return _type_errors(value, path) if _is_model(value) else []
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        tried = [_check(value, a, path) for a in args if a is not type(None)]
        return [] if any(not t for t in tried) else min(tried, key=len)
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [p for i, v in enumerate(value) for p in _check(v, args[0] if args else Any, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not a mapping"]
        return [p for k, v in value.items() for p in _check(v, args[1] if args else Any, f"{path}.{k}")]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = [m.value for m in hint]
        raw = value.value if isinstance(value, enum.Enum) else value
        return [] if raw in allowed else [f"{path}: {raw!r} is not one of {allowed}"]
    if hint is bool:
        return [] if isinstance(value, bool) else [f"{path}: {value!r} is not a boolean"]
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not an integer"]
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if hint is str:
        return [] if isinstance(value, str) else [f"{path}: {value!r} is not a string"]
    if isinstance(hint, type) and issubclass(hint, cogvariants.Dataquery):
        return (
            _type_errors(value, path)
            if isinstance(value, cogvariants.Dataquery)
            else [f"{path}: {value!r} is not a query"]
        )
    if isinstance(hint, type):
        if not isinstance(value, hint):
            return [f"{path}: {value!r} is not a {hint.__name__}"]
        return _type_errors(value, path)
    return []
