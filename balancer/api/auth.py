"""Bearer tokens from ``api.tokens``: writes need a ``write`` token, reads any (none with open_reads).

Secrets are read once, when the app is built (a token_file that cannot be read is a ConfigError then,
not a 500 later). A presented token is compared with every configured one in constant time
(``hmac.compare_digest``), so the time taken says nothing about which token, or how much of one,
matched. The token's ``name`` is the actor in the audit log.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from balancer.config import ApiConfig, token_secrets

Role = Literal["read", "write"]
ANONYMOUS = "anonymous"
_REALM = 'Bearer realm="balancer"'

bearer = HTTPBearer(
    auto_error=False,
    description="A token from config.yaml `api.tokens`; writes need one with role `write`.",
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (the audit actor) and its role."""

    name: str
    role: Role


@dataclass(frozen=True)
class _Token:
    name: str
    role: Role
    secret: bytes


class Tokens:
    """The configured tokens, secrets loaded."""

    def __init__(self, api: ApiConfig) -> None:
        secrets = token_secrets(api)  # ConfigError naming every token file that cannot be used
        self._tokens = tuple(
            _Token(t.name, t.role, s.encode()) for t, s in zip(api.tokens, secrets, strict=True)
        )
        self.open_reads = api.open_reads

    def match(self, presented: str) -> Principal | None:
        """The principal whose secret equals ``presented``; every secret is compared."""
        given = presented.encode("utf-8", "surrogateescape")
        found: _Token | None = None
        for t in self._tokens:
            if hmac.compare_digest(t.secret, given) and found is None:
                found = t
        return Principal(found.name, found.role) if found is not None else None


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = _REALM + (f', error="{error}"' if error else "")
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def _caller(request: Request, creds: HTTPAuthorizationCredentials | None) -> Principal | None:
    """None when no Authorization header was sent; 401 when one was sent and is not a known token."""
    if request.headers.get("authorization") is None:
        return None
    if creds is None:
        raise _unauthorized("the Authorization header must be 'Bearer <token>'", "invalid_request")
    tokens: Tokens = request.app.state.tokens
    principal = tokens.match(creds.credentials)
    if principal is None:
        raise _unauthorized("the bearer token is not one of api.tokens", "invalid_token")
    return principal


def require_read(
    request: Request, creds: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Principal:
    """A read or write token; none needed when ``api.open_reads`` is on."""
    principal = _caller(request, creds)
    if principal is not None:
        return principal
    tokens: Tokens = request.app.state.tokens
    if tokens.open_reads:
        return Principal(ANONYMOUS, "read")
    raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")


def require_write(
    request: Request, creds: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Principal:
    """A token with role ``write``."""
    principal = _caller(request, creds)
    if principal is None:
        raise _unauthorized("a bearer token with role write is required (Authorization: Bearer <token>)")
    if principal.role != "write":
        raise HTTPException(
            403,
            f"token {principal.name!r} has role {principal.role}; this request needs a token with role write",
            headers={"WWW-Authenticate": _REALM + ', error="insufficient_scope"'},
        )
    return principal
