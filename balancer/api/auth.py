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

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from balancer.config import ApiConfig, token_secrets
from balancer.errors import ErrorCode

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


class Denied(Exception):
    """401 or 403 (by ``code``) with its Bearer challenge; the routes' dependencies and the request gate
    raise it, api/errors.py answers it."""

    def __init__(self, code: ErrorCode, detail: str, error: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.headers = {"WWW-Authenticate": _REALM + (f', error="{error}"' if error else "")}


def caller(tokens: Tokens, authorization: str | None) -> Principal | None:
    """None when no Authorization header was sent; Denied (401) when one was and is no known token."""
    if authorization is None:
        return None
    scheme, credentials = get_authorization_scheme_param(authorization)  # as HTTPBearer parses it
    if scheme.lower() != "bearer" or not credentials:
        raise Denied(
            ErrorCode.TOKEN_INVALID, "the Authorization header must be 'Bearer <token>'", "invalid_request"
        )
    principal = tokens.match(credentials)
    if principal is None:
        raise Denied(ErrorCode.TOKEN_INVALID, "the bearer token is not one of api.tokens", "invalid_token")
    return principal


def reader(tokens: Tokens, authorization: str | None) -> Principal:
    """A read or write token; none needed when ``api.open_reads`` is on. Raises Denied."""
    principal = caller(tokens, authorization)
    if principal is not None:
        return principal
    if tokens.open_reads:
        return Principal(ANONYMOUS, "read")
    raise Denied(ErrorCode.TOKEN_REQUIRED, "a bearer token is required (Authorization: Bearer <token>)")


def writer(tokens: Tokens, authorization: str | None) -> Principal:
    """A token with role ``write``. Raises Denied."""
    principal = caller(tokens, authorization)
    if principal is None:
        raise Denied(
            ErrorCode.TOKEN_REQUIRED,
            "a bearer token with role write is required (Authorization: Bearer <token>)",
        )
    if principal.role != "write":
        raise Denied(
            ErrorCode.WRITE_TOKEN_REQUIRED,
            f"token {principal.name!r} has role {principal.role}; this request needs a token with role write",
            "insufficient_scope",
        )
    return principal


def require_read(
    request: Request, _creds: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Principal:
    """A read or write token; none needed when ``api.open_reads`` is on. Raises Denied."""
    return reader(request.app.state.tokens, request.headers.get("authorization"))


def require_write(
    request: Request, _creds: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Principal:
    """A token with role ``write`` (the request gate already refused anything else before the body
    was read; this also documents the requirement in the OpenAPI document). Raises Denied."""
    return writer(request.app.state.tokens, request.headers.get("authorization"))
