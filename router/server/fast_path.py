"""A thin ASGI front that sends the hot endpoints straight to their handlers.

Starlette's middleware stack (server-error and exception middleware, router matching) costs a
measurable share of the proxy's per-request CPU (see benchmarks/overhead.py); the hot endpoints
catch their own errors, so they skip it. Everything else (lifespan, other routes, 404/405)
goes to the full Starlette app.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from router.server.responses import error_response

__all__ = ["FastDispatch"]

log = logging.getLogger("tierwise")

Handler = Callable[[Request], Awaitable[ASGIApp]]


class FastDispatch:
    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], Handler]) -> None:
        self.app = app
        self._routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self._routes.get((scope["method"], scope["path"]))
            if handler is not None:
                scope["app"] = self.app
                request = Request(scope, receive, send)
                try:
                    response: ASGIApp = await handler(request)
                except Exception as exc:  # handlers map their own errors; this is a last resort
                    log.exception("unhandled error on %s", scope["path"])
                    response = error_response(exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
