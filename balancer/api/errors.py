"""The one place the API maps exceptions to responses: ``{"code": ..., "detail": ...}`` for every error.

``code`` is a stable :class:`~balancer.errors.ErrorCode` (clients switch on it; ``CODES`` below gives
each its status and meaning, and the OpenAPI document lists them); ``detail`` says the same for people
and names the host, id or field. A 422 adds ``problems`` (``{field, value, message}`` per field); a 409
``not_leader`` adds ``leader`` and ``leader_url``.

=====================================  ======  ==================================================
exception                              status  code
=====================================  ======  ==================================================
RequestValidationError (FastAPI)       422     ``invalid_input``, one problem per field
HTTPException 400 (an unparsable body)  422     ``invalid_input``, field ``body``
InputProblem (actions.py)              422     ``invalid_input``, one problem
Denied (auth.py)                       401/403 ``token_required``, ``token_invalid``, ``write_token_required``
StoreError and its NotFound, Conflict  CODES   the exception's own ``code`` (404, 409, 503)
LeaderElsewhere                        409     ``not_leader`` with ``leader`` and ``leader_url``
NotReady                               503     ``no_snapshot``
HTTPException 404 / 405                404/405 ``not_found``; ``method_not_allowed`` with ``Allow``
anything else (a bug)                  500     ``internal_error``, logged with the traceback
=====================================  ======  ==================================================

The request gate (middleware.py) answers 401/403 and ``body_too_large`` (413) through
``error_response`` too. Validation messages name the field, the value sent and what is allowed, in
the words config.yaml errors use (balancer.config).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match

from balancer.api.actions import InputProblem
from balancer.api.auth import Denied
from balancer.api.schemas import PATTERN_MEANING, Problem
from balancer.config_problems import allowed_text as config_allowed
from balancer.errors import Conflict, ErrorCode, NotReady, StoreError

log = logging.getLogger("balancer.api")
_LOCATIONS = ("body", "query", "path", "header", "cookie")

#: Every code's HTTP status and what it means (the OpenAPI description shows this table).
CODES: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.TOKEN_REQUIRED: (401, "No bearer token, and this request needs one."),
    ErrorCode.TOKEN_INVALID: (401, "The Authorization header is malformed or names no configured token."),
    ErrorCode.WRITE_TOKEN_REQUIRED: (403, "The token has role read; this request needs role write."),
    ErrorCode.NOT_FOUND: (404, "No such route."),
    ErrorCode.HOST_NOT_FOUND: (404, "The host in the path is not a configured host."),
    ErrorCode.VM_NOT_FOUND: (404, "The last collection saw no such VM."),
    ErrorCode.DRAIN_NOT_FOUND: (404, "No such drain, or the host was never drained."),
    ErrorCode.NOT_DRAINED: (404, "Undrain: the host has no open drain and no finished drain holds it."),
    ErrorCode.PLAN_NOT_FOUND: (404, "No plan with that id."),
    ErrorCode.MOVE_NOT_FOUND: (404, "The plan has no move with that index."),
    ErrorCode.MIGRATION_NOT_FOUND: (404, "No journal record with that id."),
    ErrorCode.METHOD_NOT_ALLOWED: (405, "The path does not take this method (`Allow` names those it takes)."),
    ErrorCode.PLAN_CLOSED: (409, "The plan can no longer be approved or rejected."),
    ErrorCode.PLAN_EXPIRED: (409, "The proposal expired: the planner stopped proposing it."),
    ErrorCode.MOVE_CLOSED: (409, "The move can no longer be approved or rejected."),
    ErrorCode.DRAIN_CLOSED: (409, "The drain is no longer open."),
    ErrorCode.MIGRATION_FINISHED: (409, "The migration already ended: there is nothing to abort."),
    ErrorCode.RECORD_CHANGED: (409, "The journal record changed meanwhile; read it again."),
    ErrorCode.VM_BUSY: (409, "The VM has an unfinished migration."),
    ErrorCode.ALREADY_THERE: (409, "The VM runs on the target already."),
    ErrorCode.NOT_LEADER: (409, "Only the leader does this: retry at `leader_url` (null: none leads now)."),
    ErrorCode.AMBIGUOUS_ID: (
        409,
        "The id prefix matches several records: `detail` names them; send more characters.",
    ),
    ErrorCode.BODY_TOO_LARGE: (413, "The request body is over the limit."),
    ErrorCode.INVALID_INPUT: (
        422,
        "A field is invalid: `problems` names each, the value sent and what is allowed.",
    ),
    ErrorCode.INTERNAL_ERROR: (500, "A bug: the service log has the traceback."),
    ErrorCode.STORE_UNAVAILABLE: (503, "The store (database) failed or does not answer."),
    ErrorCode.NO_SNAPSHOT: (503, "No collection has completed yet."),
}
_BY_STATUS = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 413: ErrorCode.BODY_TOO_LARGE}


def status_of(code: ErrorCode) -> int:
    return CODES[code][0]


def error_response(
    code: ErrorCode, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The body every error has: ``{"code", "detail"}`` plus ``extra`` fields, at the code's status."""
    return JSONResponse({"code": code.value, "detail": detail, **extra}, status_of(code), headers=headers)


def denied_response(exc: Denied) -> JSONResponse:
    return error_response(exc.code, exc.detail, exc.headers)


def problems_response(problems: list[Problem]) -> JSONResponse:
    detail = "; ".join(f"{p.field}: {p.value!r} {p.message}" for p in problems)
    return error_response(ErrorCode.INVALID_INPUT, detail, problems=[p.model_dump() for p in problems])


class LeaderElsewhere(Conflict):
    """The request must go to the leader (it runs the migration); ``holder`` names it."""

    def __init__(self, message: str, holder: str | None) -> None:
        super().__init__(message, ErrorCode.NOT_LEADER)
        self.holder = holder
        self.url = holder.rpartition("@")[2] if holder and "@" in holder else None


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(InputProblem, _input)  # type: ignore[arg-type]
    app.add_exception_handler(Denied, _denied)  # type: ignore[arg-type]
    app.add_exception_handler(LeaderElsewhere, _leader)  # type: ignore[arg-type]
    app.add_exception_handler(StoreError, _store)  # type: ignore[arg-type]
    app.add_exception_handler(NotReady, _not_ready)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _denied(_request: Request, exc: Denied) -> JSONResponse:
    return denied_response(exc)


async def _leader(_request: Request, exc: LeaderElsewhere) -> JSONResponse:
    return error_response(exc.code, str(exc), leader=exc.holder, leader_url=exc.url)


async def _store(request: Request, exc: StoreError) -> JSONResponse:
    """NotFound and Conflict with their own codes; anything else the store raised is a 503."""
    if exc.code == ErrorCode.STORE_UNAVAILABLE:
        log.error(
            "event=api_store_error method=%s path=%s error=%r", request.method, request.url.path, str(exc)
        )
        return error_response(exc.code, f"store: {exc}")
    return error_response(exc.code, str(exc))


async def _not_ready(_request: Request, exc: NotReady) -> JSONResponse:
    return error_response(exc.code, str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "event=api_internal_error method=%s path=%s error=%r",
        request.method,
        request.url.path,
        f"{type(exc).__name__}: {exc}",
        exc_info=exc,
    )
    return error_response(
        ErrorCode.INTERNAL_ERROR, f"internal error ({type(exc).__name__}); the service log has the traceback"
    )


async def _http(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400:  # FastAPI's only 400: a body that is not even text (e.g. not UTF-8)
        return problems_response(
            [Problem(field="body", value=None, message=f"cannot be parsed as JSON: {exc.detail}")]
        )
    if exc.status_code == 405:
        # Starlette's router names only the methods of the first route matching the path; FastAPI
        # makes one route per method, so GET+POST /v1/drains answered `Allow: GET`. Name them all.
        allowed = sorted(_methods_of(request))
        return error_response(
            ErrorCode.METHOD_NOT_ALLOWED, str(exc.detail), headers={"Allow": ", ".join(allowed)}
        )
    code = _BY_STATUS.get(exc.status_code, ErrorCode.INTERNAL_ERROR)
    return error_response(code, str(exc.detail), headers=exc.headers)


def _methods_of(request: Request) -> set[str]:
    """The methods some route takes at the request's path (asked of the routes, however nested)."""
    methods: set[str] = set()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.routes):
            methods.add(method)
    return methods


async def _input(_request: Request, exc: InputProblem) -> JSONResponse:
    return problems_response([Problem(field=exc.field, value=_safe(exc.value), message=exc.message)])


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    body_model = _body_model(request)
    return problems_response([problem_of(dict(e), body_model) for e in exc.errors()])


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
