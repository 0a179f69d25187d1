"""config.yaml as one pydantic model; ``load()`` returns a Config or raises one ConfigError listing
every problem.

The sections mirror the packages that read them: ``collection`` (metrics/args.py), ``thresholds``,
``policy`` and ``rules`` (policy/args.py), ``limits`` and ``executor`` (executor/args.py). This
module only composes them; nothing below the service imports it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from balancer.errors import ConfigError
from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.metrics.args import CollectionArgs
from balancer.policy.args import PolicyArgs, RulesArgs, ThresholdArgs

DEFAULT_PATH = Path("/etc/balancer/config.yaml")
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
URI = re.compile(r"^[a-z][a-z0-9+.-]*:")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacityOverride(_Section):
    """Usable capacity declared for a host instead of what libvirt reports (reserve, or the lab)."""

    cpus: float | None = Field(None, gt=0, description="Usable cores.")
    memory_mib: int | None = Field(None, gt=0, description="Usable memory, MiB.")
    disk_gib: float | None = Field(None, gt=0, description="Usable disk for VM images, GiB.")


class HostConfig(_Section):
    """One hypervisor host."""

    name: str = Field(..., description="Short unique name, used in plans, metrics and drains.")
    uri: str = Field(..., description="libvirt URI the balancer connects to (control plane).")
    migration_uri: str | None = Field(
        None, description="libvirt URI the source host's libvirtd dials for peer-to-peer migration."
    )
    labels: dict[str, str] = Field(default_factory=dict)
    capacity: CapacityOverride = Field(default_factory=CapacityOverride)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not HOST_NAME.match(v):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return v

    @field_validator("uri", "migration_uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        if v is not None and not URI.match(v):
            raise ValueError("is not a libvirt URI such as qemu+tcp://host/system")
        return v


class TokenConfig(_Section):
    """An API bearer token: the secret itself or a file holding it."""

    name: str = Field(..., min_length=1, description="Shown in the audit log.")
    token: str | None = Field(None, min_length=16)
    token_file: Path | None = None
    role: Literal["write", "read"] = "write"

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("must set exactly one of token or token_file")
        return self

    def secret(self) -> str:
        if self.token is not None:
            return self.token
        assert self.token_file is not None
        return self.token_file.read_text().strip()


class ApiConfig(_Section):
    """The HTTP API (and /metrics) and who may use it."""

    listen: str = Field("127.0.0.1:8787", description="host:port the HTTP API and /metrics listen on.")
    tokens: tuple[TokenConfig, ...] = Field((), description="Bearer tokens; writes need a write token.")
    open_reads: bool = Field(False, description="Allow reads (GET) without a token.")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port with a port in 1-65535")
        return v


class StoreConfig(_Section):
    """Where drains, plans, the migration journal and the audit log are kept."""

    url: str = Field(
        "sqlite:////var/lib/balancer/balancer.db",
        description="SQLAlchemy URL: sqlite:///PATH (default) or postgresql+psycopg://... for HA.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not (v.startswith("sqlite:") or v.startswith("postgresql")):
            raise ValueError("must start with sqlite: or postgresql")
        return v


class ServiceConfig(_Section):
    """The periodic loop and leadership."""

    lease_seconds: float = Field(
        0.0,
        ge=0,
        description="Leader lease length; 0 = one collection interval (a dead leader goes in < 2 ticks). "
        "A store outage shorter than this keeps the leader; a longer one ends its term.",
    )
    intake_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Between ticks, the leader looks this often for approved moves and withdrawn ones.",
    )
    proposal_ttl_seconds: float = Field(
        0.0,
        ge=0,
        description="A proposal (automation recommend) the planner has not made again for this long "
        "expires and can no longer be approved; 0 = three collection intervals.",
    )
    shutdown_grace_seconds: float = Field(
        60.0, ge=0, description="On SIGTERM, wait this long for running migrations before leaving them."
    )
    efficacy_minutes: float = Field(
        10.0, gt=0, description="After a move, compare real load with the prediction this much later."
    )


class LoggingConfig(_Section):
    """One line per event; json for log shippers."""

    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Section):
    """The whole config.yaml."""

    hosts: tuple[HostConfig, ...] = Field((), description="The hypervisor hosts to manage.")
    automation: Literal["off", "recommend", "auto"] = Field(
        "recommend",
        description="off: collect and export only; recommend: plans wait for approval; auto: moves start.",
    )
    collection: CollectionArgs = Field(default_factory=CollectionArgs)
    thresholds: ThresholdArgs = Field(default_factory=ThresholdArgs)
    policy: PolicyArgs = Field(default_factory=PolicyArgs)
    limits: LimitArgs = Field(default_factory=LimitArgs)
    executor: ExecutorArgs = Field(default_factory=ExecutorArgs)
    rules: RulesArgs = Field(default_factory=RulesArgs)
    store: StoreConfig = Field(default_factory=StoreConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        problems: list[str] = []
        names = [h.name for h in self.hosts]
        for i, n in enumerate(names):
            if n in names[:i]:
                problems.append(f"hosts[{i}].name: {n!r} is a duplicate; host names must be unique")
        known = set(names)
        if known:
            for i, p in enumerate(self.rules.pins):
                for h in p.hosts:
                    if h not in known:
                        problems.append(f"rules.pins[{i}].hosts: {h!r} is not a configured host")
            for i, h in enumerate(self.rules.exclude_hosts):
                if h not in known:
                    problems.append(f"rules.exclude_hosts[{i}]: {h!r} is not a configured host")
        if self.limits.host_bandwidth_mib_s < self.limits.bandwidth_mib_s:
            problems.append(
                f"limits.host_bandwidth_mib_s: {self.limits.host_bandwidth_mib_s} is below "
                f"limits.bandwidth_mib_s ({self.limits.bandwidth_mib_s}); no migration could start"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def host(self, name: str) -> HostConfig:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def dump(self) -> dict[str, Any]:
        """The effective config as plain data (what `config check` prints)."""
        return self.model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------- errors
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
        "float_parsing": lambda: "is not a number",
        "bool_parsing": lambda: "is not a boolean (true/false)",
        "model_type": lambda: "must be a mapping of keys to values",
        "dict_type": lambda: "must be a mapping of keys to values",
        "tuple_type": lambda: "must be a list",
        "list_type": lambda: "must be a list",
        "string_type": lambda: "must be a string",
    }
    if kind in table:
        return table[kind]()
    msg = str(err.get("msg", kind))
    return msg.removeprefix("Value error, ")


def _render(err: dict[str, Any]) -> list[str]:
    path = _path(tuple(err.get("loc", ())))
    if err["type"] in {"missing", "extra_forbidden"}:
        return [f"{path}: {allowed_text(err)}"]
    allowed = allowed_text(err)
    if err["type"] == "value_error" and not err.get("loc"):
        return allowed.splitlines()  # cross-field problems (Config._cross_checks) already name their keys
    value = err.get("input")
    shown = repr(value) if isinstance(value, str) else _short(value)
    return [f"{path}: {shown} {allowed}"]


def _short(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("...").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def problems_of(exc: ValidationError) -> list[str]:
    """One line per validation problem: ``key.path: value <what is allowed>``."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        lines += _render(dict(err))
    return lines


# --------------------------------------------------------------------------- loading
def parse(data: Any, source: str = "config") -> Config:
    """Validate already-parsed YAML data."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"(top level): must be a mapping of keys to values, not {type(data).__name__}"], source
        )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_of(exc), source) from None


def load(path: str | Path = DEFAULT_PATH) -> Config:
    """Read and validate a config file; raises ConfigError (never a traceback-worthy exception)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError([f"file {p}: does not exist"], str(p)) from None
    except OSError as exc:
        raise ConfigError([f"file {p}: cannot be read: {exc.strerror}"], str(p)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}not valid YAML: {problem}"], str(p)) from None
    return parse(data, str(p))
