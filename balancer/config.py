"""config.yaml as one pydantic model; ``load()`` returns a Config or raises one ConfigError listing
every problem.

The sections mirror the packages that read them: ``collection`` (metrics/args.py), ``thresholds``,
``policy`` and ``rules`` (policy/args.py), ``limits`` and ``executor`` (executor/args.py). This
module only composes them; nothing below the service imports it.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from balancer.config_problems import cross_problems, problems_of, redact
from balancer.errors import ConfigError
from balancer.executor.args import ExecutorArgs, LimitArgs
from balancer.metrics.args import CollectionArgs
from balancer.policy.args import PolicyArgs, RulesArgs, ThresholdArgs

DEFAULT_PATH = Path("/etc/balancer/config.yaml")
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# libvirt URIs the balancer can drive: qemu (KVM) and libvirt's test driver, with libvirt's transports
# (https://libvirt.org/uri.html): driver[+transport]://[user@][host][:port]/path[?params].
LIBVIRT_DRIVERS = ("qemu", "test")
LIBVIRT_TRANSPORTS = ("tls", "tcp", "unix", "ssh", "libssh", "libssh2", "ext")
URI_EXAMPLE = "qemu+tls://host/system"


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
        if v is not None:
            libvirt_uri_problem(v)
        return v


def libvirt_uri_problem(uri: str) -> None:
    """Raise ValueError saying what is wrong unless ``uri`` is a qemu or test libvirt URI."""
    scheme, sep, _ = uri.partition("://")
    if not sep:
        raise ValueError(f"is not a libvirt URI (driver[+transport]://[host]/path), e.g. {URI_EXAMPLE}")
    driver, _, transport = scheme.partition("+")
    if driver not in LIBVIRT_DRIVERS:
        raise ValueError(
            f"is not a libvirt URI the balancer can use: the driver {driver!r} is not one of "
            f"{', '.join(LIBVIRT_DRIVERS)} (e.g. {URI_EXAMPLE})"
        )
    if transport and transport not in LIBVIRT_TRANSPORTS:
        raise ValueError(
            f"has the transport {transport!r}, which is not one of libvirt's: {', '.join(LIBVIRT_TRANSPORTS)}"
        )
    if any(c.isspace() for c in uri):
        raise ValueError("must not contain blanks")
    path = urlsplit(uri).path
    if driver == "qemu" and path not in ("/system", "/session"):
        raise ValueError(f"needs the path /system (or /session) after the host, e.g. {URI_EXAMPLE}")
    if driver == "test" and path in ("", "/"):
        raise ValueError("needs a path: test:///default or test:///path/to/host.xml")


MIN_TOKEN_LENGTH = 16


class TokenConfig(_Section):
    """An API bearer token: the secret itself or a file holding it."""

    name: str = Field(..., min_length=1, description="Shown in the audit log.")
    token: str | None = Field(None, min_length=MIN_TOKEN_LENGTH, repr=False)
    token_file: Path | None = Field(
        None,
        description="File holding the token; readable by its owner (and its group) only: 0600 or 0640.",
    )
    role: Literal["write", "read"] = "write"

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("must set exactly one of token or token_file")
        return self

    def secret(self) -> str:
        """The token. Raises OSError when token_file cannot be read; ConfigError when others may
        read it, group members change it, or it holds too short a token (group read is allowed:
        ``root:balancer 0640`` lets root own the secret and the service's group read it)."""
        if self.token is not None:
            return self.token
        assert self.token_file is not None
        with open(self.token_file) as f:  # the mode of what was opened, not of a path swapped since
            mode = os.fstat(f.fileno()).st_mode
            text = f.read().strip()
        where = f"token_file: {str(self.token_file)!r}"
        if mode & 0o027:
            raise ConfigError(
                [
                    f"{where} has mode {stat.S_IMODE(mode):04o}: others may read it or group "
                    "members change it; chmod 600 it (or 640 with a group only the service is in)"
                ]
            )
        if len(text) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                [f"{where} holds {len(text)} character(s); a token needs at least {MIN_TOKEN_LENGTH}"]
            )
        return text


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
        try:
            url = make_url(v)
        except ArgumentError as exc:
            raise ValueError(f"is not a database URL: {exc}") from None
        except ValueError:  # make_url's int() of the port
            raise ValueError("is not a database URL: its port is not a number") from None
        if url.get_backend_name() == "postgresql" and url.get_driver_name() != "psycopg":
            raise ValueError(f"uses the driver {url.get_driver_name()!r}; use postgresql+psycopg://...")
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError(f"has the port {url.port}, not in 1-65535")
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

    def host(self, name: str) -> HostConfig:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def dump(self, *, secrets: bool = False) -> dict[str, Any]:
        """The effective config as plain data; tokens and the database password shown as ***
        unless ``secrets`` (what `config check` prints, and what may go into a bug report)."""
        data = self.model_dump(mode="json", by_alias=True)
        return data if secrets else redact(data)


# --------------------------------------------------------------------------- loading
def parse(data: Any, source: str = "config") -> Config:
    """Validate already-parsed YAML data; every problem, across keys too, in one ConfigError.

    Types are strict (the data goes through JSON, then pydantic's strict mode): ``true`` is no
    number, ``1`` no boolean, ``"60"`` no duration, ``5.5`` no count. YAML still gives numbers,
    booleans and lists their own types, so nothing that is written plainly is refused.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"(top level): must be a mapping of keys to values, not {type(data).__name__}"], source
        )
    problems: list[str] = []
    cfg: Config | None = None
    try:
        cfg = Config.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        problems += problems_of(exc)
    except (TypeError, ValueError) as exc:  # keys JSON cannot hold (e.g. a list used as a key)
        problems.append(f"(top level): cannot be read as plain data: {exc}")
    limits = LimitArgs.model_fields
    problems += cross_problems(
        data,
        {
            "bandwidth_mib_s": limits["bandwidth_mib_s"].default,
            "host_bandwidth_mib_s": limits["host_bandwidth_mib_s"].default,
        },
    )
    if problems or cfg is None:
        raise ConfigError(problems, source)
    return cfg


def token_secrets(api: ApiConfig) -> list[str]:
    """Each token's secret, in order; one ConfigError naming every token file that cannot be used."""
    secrets: list[str] = []
    problems: list[str] = []
    for i, t in enumerate(api.tokens):
        try:
            secrets.append(t.secret())
        except OSError as exc:
            file = str(t.token_file)
            problems.append(f"api.tokens[{i}].token_file: {file!r} cannot be read: {exc.strerror}")
        except ConfigError as exc:
            problems += [f"api.tokens[{i}].{p}" for p in exc.problems]
    if problems:
        raise ConfigError(problems, "api")
    return secrets


def service_problems(cfg: Config) -> list[str]:
    """What `balancer run` needs beyond a valid file: hosts to manage, usable token files."""
    problems = []
    if not cfg.hosts:
        problems.append(
            "hosts: is empty: the service needs at least one host to manage (see `balancer config example`)"
        )
    try:
        token_secrets(cfg.api)
    except ConfigError as exc:
        problems += exc.problems
    return problems


def load(path: str | Path = DEFAULT_PATH, *, for_service: bool = False) -> Config:
    """Read and validate a config file; raises ConfigError (never a traceback-worthy exception).

    ``for_service``: also what the service needs (:func:`service_problems`).
    """
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
    cfg = parse(data, str(p))
    if for_service and (problems := service_problems(cfg)):
        raise ConfigError(problems, str(p))
    return cfg
