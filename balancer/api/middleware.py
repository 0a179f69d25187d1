"""Counts every HTTP request in ``balancer_api_requests_total{method, code}`` (a pure ASGI middleware)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from balancer.metrics.export import Metrics

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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
