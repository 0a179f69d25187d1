"""Pure ASGI middlewares: the request gate (auth and body size before the body is read) and the
request counter (``balancer_api_requests_total{method, code}``).

FastAPI reads and parses a request's JSON body before it resolves the route's dependencies, so a
token check in a dependency comes too late to protect memory: an unauthenticated 200 MiB body was
read and parsed (measured: +528 MiB) before its answer. The gate answers first, from the headers.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from balancer.api.auth import Denied, Tokens, writer
from balancer.api.errors import denied_response, error_response
from balancer.errors import ErrorCode
from balancer.metrics.export import Metrics

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The largest request body accepted. The API's bodies are small JSON objects (a drain request is at
# most ~7 KiB even with a 1000-character note of escaped characters); 64 KiB leaves room.
MAX_BODY_BYTES = 64 * 1024


class RequestGate:
    """Before the app reads a byte of the body: a request that may change something (any method
    but GET, HEAD and OPTIONS) needs a write token (401, 403), and a body over ``max_body_bytes``
    is refused (413) — by its Content-Length, or, for a body sent without one, once that many
    bytes arrived (only so much is ever held)."""

    def __init__(self, app: ASGIApp, tokens: Tokens, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        writes = scope["method"] not in SAFE_METHODS
        if writes:
            try:
                writer(self.tokens, headers.get("authorization"))
            except Denied as exc:
                await denied_response(exc)(scope, receive, send)
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        if writes and length is None:
            body = await self._read_at_most(receive)
            if body is None:
                await self._too_large(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _read_at_most(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None once more than max_body_bytes arrived."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client went away; the app sees that
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.max_body_bytes} bytes"
        refusal = error_response(ErrorCode.BODY_TOO_LARGE, detail, {"Connection": "close"})
        await refusal(scope, receive, send)


def _replay(messages: list[Message], then: Receive) -> Receive:
    """The body already read, then the connection's own messages (e.g. a disconnect)."""
    pending = list(messages)

    async def receive() -> Message:
        return pending.pop(0) if pending else await then()

    return receive


class RequestCounter:
    """Labels are bounded: a known method or ``other``, and the status code (500 when the app raised)."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.metrics is None:
            await self.app(scope, receive, send)
            return
        status = [500]  # if the app raises before it answers, the server error handler answers 500

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        method = scope.get("method", "")
        try:
            await self.app(scope, receive, counting_send)
        finally:
            label = method if method in _METHODS else "other"
            self.metrics.api_requests.labels(label, str(status[0])).inc()
