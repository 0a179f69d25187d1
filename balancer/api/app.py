"""``create_app(ctx)``: the service's FastAPI app (routes under /v1, OpenAPI at /openapi.json)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from balancer import __version__
from balancer.api import errors
from balancer.api.auth import Tokens
from balancer.api.context import ApiContext
from balancer.api.middleware import MAX_BODY_BYTES, RequestCounter, RequestGate
from balancer.api.routes import cluster, drains, health, migrations, plans
from balancer.api.schemas import ErrorOut

__all__ = ["ApiContext", "create_app"]

DESCRIPTION = """\
Drains, plans and migrations of the balancer, and the cluster as its last collection saw it.

**Auth**: `Authorization: Bearer <token>` with a token from config.yaml `api.tokens`. Writes (POST,
DELETE) need a token with role `write`; reads need any token unless `api.open_reads` is on. The
token's `name` is recorded as the actor in the audit log. `/healthz`, `/readyz` and `/metrics` need no
token: probes and Prometheus scrape them, and they show nothing an operator could change. Bind
`api.listen` to a trusted network if /metrics must stay private. A write without a write token is
refused (401, 403) before its body is read.

**Limits**: a request body may hold at most {max_body} bytes (413 beyond, judged by Content-Length
before anything is read).

**Errors**: every error is `{{"code": ..., "detail": ...}}`: `code` is stable (act on it), `detail` says
the same for people (its wording may change). A 422 adds `problems`, one `{{field, value, message}}`
per invalid field; a 409 `not_leader` adds `leader` and `leader_url`. The codes:

{codes}
"""


def _codes_table() -> str:
    rows = [f"| `{code.value}` | {status} | {meaning} |" for code, (status, meaning) in errors.CODES.items()]
    return "\n".join(["| code | status | meaning |", "|---|---|---|", *rows])


def create_app(ctx: ApiContext) -> FastAPI:
    """The app serving ``ctx``; raises ConfigError when a token_file cannot be read."""
    # FastAPIOffline: /docs from Swagger UI's files shipped in the wheel, no CDN (air-gapped hosts)
    app = FastAPIOffline(
        title="balancer",
        version=__version__,
        description=DESCRIPTION.format(max_body=MAX_BODY_BYTES, codes=_codes_table()),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.tokens = Tokens(ctx.cfg.api)
    errors.install(app)
    app.add_middleware(RequestGate, tokens=app.state.tokens)
    app.add_middleware(RequestCounter, metrics=ctx.metrics)  # outermost: counts the gate's answers too
    for module in (health, cluster, drains, plans, migrations):
        app.include_router(module.router)
    app.include_router(plans.preview_router)
    _document_hosts(app, [h.name for h in ctx.cfg.hosts])
    return app


def _document_hosts(app: FastAPI, hosts: list[str]) -> None:
    """List the configured hosts as the ``enum`` of every ``host`` field in the OpenAPI document."""
    generate = app.openapi

    def restrict(schema: dict[str, Any]) -> None:
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == "string":
                branch["enum"] = hosts

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        doc = generate()
        if fresh:
            _document_body_limit(doc)
        if fresh and hosts:
            for item in doc["paths"].values():
                for operation in item.values():
                    for param in operation.get("parameters", []):
                        if param["name"] == "host":
                            restrict(param["schema"])
            schemas = doc["components"]["schemas"]
            restrict(schemas["DrainCreate"]["properties"]["host"])
            restrict(schemas["MigrationCreate"]["properties"]["target"])
            restrict(schemas["MigrationCreate"]["properties"]["source"])
            restrict(schemas["PlanPreviewIn"]["properties"]["drain"]["items"])
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _document_body_limit(doc: dict[str, Any]) -> None:
    """A 413 on every operation that takes a body (the request gate answers it for any route)."""
    doc["components"]["schemas"].setdefault("ErrorOut", ErrorOut.model_json_schema())
    for item in doc["paths"].values():
        for operation in item.values():
            if "requestBody" in operation:
                operation["responses"]["413"] = {
                    "description": f"The body is larger than {MAX_BODY_BYTES} bytes",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
                }
