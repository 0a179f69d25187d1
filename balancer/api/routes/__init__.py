"""The API's routers, one per resource, and what their parameters and error responses have in common."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant

from balancer.api.actions import InputProblem
from balancer.api.auth import Principal, require_read, require_write
from balancer.api.context import ApiContext, get_ctx
from balancer.api.schemas import ErrorOut, ValidationOut

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Reader = Annotated[Principal, Depends(require_read)]
Writer = Annotated[Principal, Depends(require_write)]

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")]
PlanId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Plan id.")]
HostName = Annotated[str, Path(min_length=1, max_length=63, description="A configured host.")]
HostFilter = Annotated[
    str | None, Query(min_length=1, max_length=63, description="Only this configured host.")
]

_CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer challenge"}}
R401: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "No token, or not one of api.tokens (`token_required`, `token_invalid`)",
        "headers": _CHALLENGE,
    }
}
R403: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorOut,
        "description": "The token has role read; this needs write (`write_token_required`)",
        "headers": _CHALLENGE,
    }
}
R404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such id or host (`*_not_found`, `not_drained`)"}
}
R409: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "The stored state forbids it (the code says how)"}
}
R422: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ValidationOut,
        "description": "`invalid_input`: which fields, the values sent, what is allowed",
    }
}
R503: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorOut,
        "description": "The store failed (`store_unavailable`) or no collection yet (`no_snapshot`)",
    }
}
READ = {**R401, **R422, **R503}
WRITE = {**R401, **R403, **R422, **R503}


def known_query(request: Request) -> None:
    """Refuse query parameters the route does not take: a misspelt filter must not be ignored silently."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    allowed = _query_names(dependant) if dependant is not None else frozenset()
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            known = f"allowed: {', '.join(sorted(allowed))}" if allowed else "it takes no query parameters"
            raise InputProblem(name, value, f"is not a query parameter of {request.url.path}; {known}")


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)
