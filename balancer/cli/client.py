"""How the operator commands reach the balancer: the service's HTTP API, or, only when asked, the store.

``connect()`` talks to the API (``--api``, ``$BALANCER_API``, else ``http://<api.listen>``). A service
that does not answer is an error (exit 3) naming the address tried: the CLI never falls back to a
store of its own, since a request written where no service looks is a request nothing acts on.

``--local`` is the explicit offline mode, for when no service runs at all: the commands act on the
store named by ``store.url`` (it must exist already: nothing is created) and refuse while any
instance holds the leader lease, which would make two authorities. Both backends return the API's
own response models (balancer.api.schemas), so tables and ``--json`` look the same either way.

Requests only the leader can carry out (migrate, abort) follow the leader: a follower answers 409
``not_leader`` with the leader's URL and the client retries there once. Every failure is a ClientError
with its exit code and, when the service (or the store) said what went wrong, its stable ErrorCode:
callers decide on that code, never on an error's wording.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import make_url

from balancer.api import actions
from balancer.api.schemas import (
    AbortOut,
    DrainCreate,
    DrainOut,
    HostOut,
    MigrationCreate,
    MigrationOut,
    MoveOut,
    PlanOut,
    PlanSummary,
    VMOut,
)
from balancer.config import Config
from balancer.errors import AmbiguousId, Conflict, ErrorCode, NotFound, StoreError
from balancer.exit_codes import EXIT_FAILED, EXIT_INPUT, EXIT_UNREACHABLE
from balancer.model import MoveState, Plan, Snapshot, plan_from_dict, snapshot_from_json
from balancer.store import Store
from balancer.store.records import PlanStatus

T = TypeVar("T")
API_ENV = "BALANCER_API"
TOKEN_ENV = "BALANCER_TOKEN"
TIMEOUT_SECONDS = 30.0
_KNOWN_CODES = frozenset(c.value for c in ErrorCode)
_TOKEN_CODES = frozenset({ErrorCode.TOKEN_REQUIRED, ErrorCode.TOKEN_INVALID, ErrorCode.WRITE_TOKEN_REQUIRED})


class ClientError(Exception):
    """A request failed: ``exit_code`` for the process, ``error`` the service's (or the store's) ErrorCode
    when it named one (None: it could not be reached, or answered no known code), ``body`` the answer."""

    def __init__(
        self, message: str, exit_code: int, error: ErrorCode | None = None, body: Any = None
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.error = error
        self.body = body


class Backend(Protocol):
    """What the operator commands need; ``where`` names the service URL or the store."""

    where: str

    def create_drain(self, req: DrainCreate) -> tuple[DrainOut, bool]: ...
    def cancel_drain(self, host: str) -> DrainOut: ...
    def drain(self, host: str) -> DrainOut: ...
    def drains(self, limit: int) -> list[DrainOut]: ...
    def plans(self, status: PlanStatus | None, limit: int) -> list[PlanSummary]: ...
    def plan(self, plan_id: int) -> PlanOut: ...
    def decide_plan(self, plan_id: int, approve: bool) -> PlanOut: ...
    def decide_move(self, plan_id: int, index: int, approve: bool) -> MoveOut: ...
    def migrations(self, state: MoveState | None, vm: str | None, limit: int) -> list[MigrationOut]: ...
    def migration(self, migration_id: str) -> MigrationOut: ...
    def abort(self, migration_id: str) -> AbortOut: ...
    def close(self) -> None: ...


def api_url(cfg: Config | None, api: str | None) -> str:
    """``api`` if given, else the config's api.listen as a URL (a wildcard address means this machine)."""
    if api:
        return api.rstrip("/")
    host, _, port = (cfg.api.listen if cfg is not None else "127.0.0.1:8787").rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::", "[::]") else host
    return f"http://{host}:{port}"


def default_token(cfg: Config | None) -> str | None:
    """The config's first write token (else its first token): the local operator's credentials."""
    if cfg is None or not cfg.api.tokens:
        return None
    chosen = next((t for t in cfg.api.tokens if t.role == "write"), cfg.api.tokens[0])
    try:
        return chosen.secret()
    except OSError as exc:
        raise ClientError(
            f"api token {chosen.name!r}: {chosen.token_file} cannot be read: {exc.strerror}", EXIT_INPUT
        ) from None


def cli_actor() -> str:
    """Who is at the keyboard, for the audit log of store-direct changes."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or getpass.getuser()


def connect(cfg: Config | None, api: str | None, token: str | None, local: bool = False) -> Backend:
    """The service's API, or with ``local`` the store directly (refused while a leader runs)."""
    if local:
        if cfg is None:
            raise ClientError("--local needs a config (store.url names the store)", EXIT_INPUT)
        return StoreBackend(cfg, cli_actor())
    return ApiBackend(api_url(cfg, api), token if token is not None else default_token(cfg))


# --------------------------------------------------------------------------- over HTTP
class ApiBackend:
    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT_SECONDS) -> None:
        self.where = url
        self._token = token
        self._timeout = timeout
        self._http = self._client(url)

    def _client(self, url: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        return httpx.Client(base_url=url, headers=headers, timeout=self._timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, kind: Any, method: str, path: str, **kw: Any) -> tuple[Any, int]:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.TimeoutException:
            raise ClientError(
                f"the service at {self.where} did not answer within {self._timeout:g} s", EXIT_UNREACHABLE
            ) from None
        except httpx.HTTPError as exc:
            raise ClientError(
                f"no service answers at {self.where} ({exc or type(exc).__name__}); start `balancer run`, "
                "point --api at it, or act on the store with --local when no service runs at all",
                EXIT_UNREACHABLE,
            ) from None
        if r.status_code >= 400:
            body = _json(r)
            code = _error_code(body)
            exit_code = EXIT_INPUT if code == ErrorCode.AMBIGUOUS_ID else _exit_code(r.status_code)
            raise ClientError(_http_error(r, body), exit_code, code, body)
        try:
            return TypeAdapter(kind).validate_python(r.json()), r.status_code
        except (ValueError, ValidationError) as exc:
            raise ClientError(
                f"the service at {self.where} sent an unexpected answer: {exc}", EXIT_FAILED
            ) from None

    def _on_leader(self, kind: Any, method: str, path: str, **kw: Any) -> Any:
        """A request only the leader carries out: retried once at the leader a follower names."""
        try:
            return self._call(kind, method, path, **kw)[0]
        except ClientError as exc:
            leader = exc.body.get("leader_url") if exc.error == ErrorCode.NOT_LEADER else None
            if not isinstance(leader, str) or not leader or leader.rstrip("/") == self.where:
                raise
        self._http.close()
        self.where = leader.rstrip("/")
        self._http = self._client(self.where)
        return self._call(kind, method, path, **kw)[0]

    def create_drain(self, req: DrainCreate) -> tuple[DrainOut, bool]:
        out, status = self._call(DrainOut, "POST", "/v1/drains", json=req.model_dump(exclude_none=True))
        return out, status == 201

    def cancel_drain(self, host: str) -> DrainOut:
        return self._call(DrainOut, "DELETE", f"/v1/drains/{_segment(host)}")[0]

    def drain(self, host: str) -> DrainOut:
        return self._call(DrainOut, "GET", f"/v1/drains/{_segment(host)}")[0]

    def drains(self, limit: int) -> list[DrainOut]:
        return self._call(list[DrainOut], "GET", "/v1/drains", params={"limit": limit})[0]

    def plans(self, status: PlanStatus | None, limit: int) -> list[PlanSummary]:
        params = _params(status=status, limit=limit)
        return self._call(list[PlanSummary], "GET", "/v1/plans", params=params)[0]

    def plan(self, plan_id: int) -> PlanOut:
        return self._call(PlanOut, "GET", f"/v1/plans/{plan_id}")[0]

    def decide_plan(self, plan_id: int, approve: bool) -> PlanOut:
        verb = "approve" if approve else "reject"
        return self._call(PlanOut, "POST", f"/v1/plans/{plan_id}/{verb}")[0]

    def decide_move(self, plan_id: int, index: int, approve: bool) -> MoveOut:
        path = f"/v1/plans/{plan_id}/moves/{index}/{'approve' if approve else 'reject'}"
        return self._call(MoveOut, "POST", path)[0]

    def migrations(self, state: MoveState | None, vm: str | None, limit: int) -> list[MigrationOut]:
        params = _params(state=state, vm=vm, limit=limit)
        return self._call(list[MigrationOut], "GET", "/v1/migrations", params=params)[0]

    def abort(self, migration_id: str) -> AbortOut:
        return self._on_leader(AbortOut, "POST", f"/v1/migrations/{_segment(migration_id)}/abort")  # type: ignore[no-any-return]

    # -- what only the service can do (no --local twin: these need its live view) ------------------
    def migrate(self, req: MigrationCreate) -> MigrationOut:
        body = req.model_dump(exclude_none=True)
        return self._on_leader(MigrationOut, "POST", "/v1/migrations", json=body)  # type: ignore[no-any-return]

    def migration(self, migration_id: str) -> MigrationOut:
        return self._call(MigrationOut, "GET", f"/v1/migrations/{_segment(migration_id)}")[0]

    def hosts(self) -> list[HostOut]:
        return self._call(list[HostOut], "GET", "/v1/hosts")[0]

    def vms(self) -> list[VMOut]:
        return self._call(list[VMOut], "GET", "/v1/vms")[0]

    def preview(self, drains: list[str]) -> Plan:
        data, _ = self._call(dict[str, Any], "POST", "/v1/preview", json={"drain": drains})
        return plan_from_dict(data)

    def snapshot(self) -> Snapshot:
        data, _ = self._call(dict[str, Any], "GET", "/v1/snapshot")
        return snapshot_from_json(json.dumps(data))


def _segment(value: str) -> str:
    return quote(value, safe="")


def _params(**values: Any) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in values.items() if v is not None}


def _exit_code(status: int) -> int:
    if status == 409:
        return EXIT_FAILED  # understood, and refused by the state of things
    if status == 503:
        return EXIT_UNREACHABLE
    return EXIT_INPUT if status < 500 else EXIT_FAILED


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def _error_code(body: Any) -> ErrorCode | None:
    """The answer's ``code`` if it is one this CLI knows (a newer service may name more)."""
    code = body.get("code") if isinstance(body, dict) else None
    return ErrorCode(code) if code in _KNOWN_CODES else None


def _http_error(r: httpx.Response, body: Any) -> str:
    detail = body.get("detail") if isinstance(body, dict) else r.text[:300]
    hint = " (pass --token or set $BALANCER_TOKEN)" if _error_code(body) in _TOKEN_CODES else ""
    return f"{detail}{hint} [HTTP {r.status_code}]"


# --------------------------------------------------------------------------- the store directly
class StoreBackend:
    """``--local``: the same actions the API runs, in this process, on an existing store, while no
    instance leads. The actor in the audit log is the CLI user."""

    def __init__(self, cfg: Config, actor: str) -> None:
        try:
            self.store = Store.open(cfg.store.url, create=False)
        except StoreError as exc:
            raise ClientError(f"--local: {exc}", EXIT_UNREACHABLE) from None
        self.where = make_url(cfg.store.url).render_as_string(hide_password=True)
        try:
            refuse_while_led(self.store)
        except ClientError:
            self.store.close()
            raise
        self.cfg = cfg
        self.actor = actor
        self.clock: Callable[[], float] = self.store.now

    def close(self) -> None:
        self.store.close()

    def _do(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except actions.InputProblem as exc:
            raise ClientError(f"{exc.field}: {exc.value!r} {exc.message}", EXIT_INPUT, exc.code) from None
        except (NotFound, AmbiguousId) as exc:  # an unknown id, or a prefix of several: bad input
            raise ClientError(str(exc), EXIT_INPUT, exc.code) from None
        except Conflict as exc:
            raise ClientError(str(exc), EXIT_FAILED, exc.code) from None
        except StoreError as exc:
            raise ClientError(f"store: {exc}", EXIT_UNREACHABLE, exc.code) from None

    def create_drain(self, req: DrainCreate) -> tuple[DrainOut, bool]:
        return self._do(lambda: actions.create_drain(self.cfg, self.store, req, self.actor, self.clock()))

    def cancel_drain(self, host: str) -> DrainOut:
        return self._do(lambda: actions.cancel_drain(self.cfg, self.store, host, self.actor, self.clock()))

    def drain(self, host: str) -> DrainOut:
        return self._do(lambda: actions.drain_of(self.cfg, self.store, host, self.clock()))

    def drains(self, limit: int) -> list[DrainOut]:
        return self._do(lambda: actions.list_drains(self.cfg, self.store, self.clock(), None, None, limit))

    def plans(self, status: PlanStatus | None, limit: int) -> list[PlanSummary]:
        return self._do(lambda: actions.list_plans(self.store, status, limit))

    def plan(self, plan_id: int) -> PlanOut:
        return self._do(lambda: actions.get_plan(self.store, plan_id))

    def decide_plan(self, plan_id: int, approve: bool) -> PlanOut:
        return self._do(lambda: actions.decide_plan(self.store, plan_id, approve, self.actor, self.clock()))

    def decide_move(self, plan_id: int, index: int, approve: bool) -> MoveOut:
        return self._do(
            lambda: actions.decide_move(self.store, plan_id, index, approve, self.actor, self.clock())
        )

    def migrations(self, state: MoveState | None, vm: str | None, limit: int) -> list[MigrationOut]:
        return self._do(lambda: actions.list_migrations(self.store, state, vm, limit))

    def migration(self, migration_id: str) -> MigrationOut:
        return self._do(lambda: actions.get_migration(self.store, migration_id))

    def abort(self, migration_id: str) -> AbortOut:
        raise ClientError(
            f"abort needs the service that runs migration {migration_id} (its leader); with --local "
            "no service runs, so nothing is migrating through balancer: there is nothing to abort",
            EXIT_FAILED,
        )


def refuse_while_led(store: Store) -> None:
    """``--local`` acts only while no instance leads: two authorities would act on one cluster."""
    try:
        lease = store.current_leader()
    except StoreError as exc:
        raise ClientError(f"--local: the store does not answer: {exc}", EXIT_UNREACHABLE) from None
    if lease is not None:
        url = lease.holder.rpartition("@")[2] if "@" in lease.holder else "?"
        raise ClientError(
            f"--local refused: a service leads (holder {lease.holder}, epoch {lease.epoch}); use it "
            f"instead: drop --local (or --api {url})",
            EXIT_FAILED,
        )
