"""The one place the API maps exceptions to responses.

=====================================  ======  ==============================================
exception                              status  body
=====================================  ======  ==============================================
RequestValidationError (FastAPI)       422     ``{"detail": [{"field", "value", "message"}]}``
HTTPException 400 (an unparsable body)  422     the same, field ``body``
InputProblem (actions.py)              422     the same, one problem
NotFound (store, unknown host in path) 404     ``{"detail": "..."}``
LeaderElsewhere                        409     ``{"detail", "leader", "leader_url"}``
HTTPException 405 (no such method)     405     ``{"detail"}``, ``Allow`` naming every method of the path
Conflict (store)                       409     ``{"detail": "..."}``
StoreError (database down, ...)        503     ``{"detail": "store: ..."}``
anything else (a bug)                  500     ``{"detail": "internal error (Type) ..."}``, logged
=====================================  ======  ==============================================

Validation messages name the field, the value sent and what is allowed, in the words config.yaml
errors use (balancer.config).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match

from balancer.api.actions import InputProblem
from balancer.api.schemas import PATTERN_MEANING, Problem
from balancer.config_problems import allowed_text as config_allowed
from balancer.errors import Conflict, NotFound, StoreError

log = logging.getLogger("balancer.api")
_LOCATIONS = ("body", "query", "path", "header", "cookie")


class LeaderElsewhere(Conflict):
    """The request must go to the leader (it runs the migration); ``holder`` names it."""

    def __init__(self, message: str, holder: str | None) -> None:
        super().__init__(message)
        self.holder = holder
        self.url = holder.rpartition("@")[2] if holder and "@" in holder else None


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(InputProblem, _input)  # type: ignore[arg-type]
    app.add_exception_handler(NotFound, _status(404))
    app.add_exception_handler(LeaderElsewhere, _leader)  # type: ignore[arg-type]
    app.add_exception_handler(Conflict, _status(409))
    app.add_exception_handler(StoreError, _store)
    app.add_exception_handler(Exception, _unexpected)


def _status(code: int) -> Any:
    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, code)

    return handler


async def _leader(_request: Request, exc: LeaderElsewhere) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "leader": exc.holder, "leader_url": exc.url}, 409)


async def _store(request: Request, exc: Exception) -> JSONResponse:
    log.error("event=api_store_error method=%s path=%s error=%r", request.method, request.url.path, str(exc))
    return JSONResponse({"detail": f"store: {exc}"}, 503)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "event=api_internal_error method=%s path=%s error=%r",
        request.method,
        request.url.path,
        f"{type(exc).__name__}: {exc}",
        exc_info=exc,
    )
    return JSONResponse(
        {"detail": f"internal error ({type(exc).__name__}); the service log has the traceback"}, 500
    )


async def _http(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 400:  # FastAPI's only 400: a body that is not even text (e.g. not UTF-8)
        problem = Problem(field="body", value=None, message=f"cannot be parsed as JSON: {exc.detail}")
        return JSONResponse({"detail": [problem.model_dump()]}, 422)
    if exc.status_code == 405:
        # Starlette's router names only the methods of the first route matching the path; FastAPI
        # makes one route per method, so GET+POST /v1/drains answered `Allow: GET`. Name them all.
        allowed = sorted(_methods_of(request))
        return JSONResponse({"detail": str(exc.detail)}, 405, headers={"Allow": ", ".join(allowed)})
    return await http_exception_handler(request, exc)


def _methods_of(request: Request) -> set[str]:
    """The methods some route takes at the request's path (asked of the routes, however nested)."""
    methods: set[str] = set()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.routes):
            methods.add(method)
    return methods


async def _input(_request: Request, exc: InputProblem) -> JSONResponse:
    problem = Problem(field=exc.field, value=_safe(exc.value), message=exc.message)
    return JSONResponse({"detail": [problem.model_dump()]}, exc.status)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    body_model = _body_model(request)
    problems = [problem_of(dict(e), body_model).model_dump() for e in exc.errors()]
    return JSONResponse({"detail": problems}, 422)


# --------------------------------------------------------------------------- rendering
def problem_of(err: dict[str, Any], body_model: type[BaseModel] | None = None) -> Problem:
    """One pydantic error as field, value sent and what is allowed (the CLI renders its own with it)."""
    loc = tuple(err.get("loc", ()))
    where = str(loc[0]) if loc and loc[0] in _LOCATIONS else "body"
    rest = loc[1:] if loc and loc[0] in _LOCATIONS else loc
    field = ""
    for part in rest:
        field += f"[{part}]" if isinstance(part, int) else ("." if field else "") + str(part)
    kind = err["type"]
    field = "body" if kind == "json_invalid" else field or where
    value = None if kind in ("missing", "json_invalid") else _safe(err.get("input"))
    return Problem(field=field, value=value, message=_message(err, loc, where, field, body_model))


def _message(
    err: dict[str, Any], loc: tuple[Any, ...], where: str, field: str, body_model: type[BaseModel] | None
) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    whole_body = where == "body" and field == "body"
    if kind == "json_invalid":
        at = f" (at character {loc[1]})" if len(loc) > 1 and isinstance(loc[1], int) else ""
        return f"is not valid JSON: {ctx.get('error', err.get('msg'))}{at}"
    if kind == "missing" and whole_body:
        return "is required: send a JSON object with Content-Type: application/json"
    if whole_body and kind in ("model_attributes_type", "dict_type", "model_type"):
        return "must be a JSON object sent with Content-Type: application/json"
    if kind == "extra_forbidden":
        allowed = ", ".join(body_model.model_fields) if body_model is not None else "see /openapi.json"
        return f"is not a known field; allowed: {allowed}"
    if kind == "enum":
        return f"is not one of {ctx.get('expected')}"
    if kind == "finite_number":
        return "is not a finite number"
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} character(s)"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return PATTERN_MEANING.get(pattern, f"does not match the pattern {pattern}")
    if kind in (
        "missing",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "int_parsing",
        "int_from_float",
        "int_type",
        "float_parsing",
        "float_type",
        "bool_parsing",
        "bool_type",
        "string_type",
        "string_too_short",
        "literal_error",
    ):
        return config_allowed(err)
    return str(err.get("msg", kind)).removeprefix("Value error, ")


def _safe(value: Any) -> Any:
    """The value as sent if it is plain JSON and short, else a shortened repr (bytes, NaN, huge bodies)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)[:200]
    return value if len(text) <= 500 else text[:200] + "..."


def _body_model(request: Request) -> type[BaseModel] | None:
    field = getattr(request.scope.get("route"), "body_field", None)
    annotation = getattr(getattr(field, "field_info", None), "annotation", None)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
