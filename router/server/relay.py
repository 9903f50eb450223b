"""`RelayResponse`: stream upstream SSE bytes to the client with as little work per chunk as
possible, and stop reading the upstream as soon as the client hangs up.

Starlette's `StreamingResponse` does the same through an anyio task group per response; this one
uses one plain asyncio watcher task, which costs less per streamed request (benchmarks/overhead.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from starlette.types import Message, Receive, Scope, Send

from router.errors import ProxyError, error_body
from router.upstreams.base import Stream

__all__ = ["RelayResponse"]

log = logging.getLogger("tierwise")


class RelayResponse:
    """An ASGI response relaying an open upstream `Stream`; closes it whatever happens."""

    def __init__(
        self,
        stream: Stream,
        headers: Mapping[str, str],
        on_done: Callable[[bool], None] | None = None,
    ) -> None:
        """`on_done(completed)` runs once at the end, whether the stream completed or not;
        `error` is then the `ProxyError` that ended the stream mid-way, if one did."""
        self._stream = stream
        self.error: ProxyError | None = None
        self._on_done = on_done
        self._headers = [(b"content-type", b"text/event-stream; charset=utf-8")] + [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        state = {"done": False, "gone": False}

        async def watch() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    if not state["done"] and task is not None:
                        state["gone"] = True
                        task.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            try:
                async for chunk in self._stream:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except ProxyError as exc:
                self.error = exc
                log.warning("stream failed mid-way: %s", exc.message)
                event = b"data: " + error_body(exc.status, exc.message, exc.type, exc.code)
                await send(
                    {"type": "http.response.body", "body": event + b"\n\n", "more_body": True}
                )
            state["done"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not state["gone"]:
                raise
            if task is not None:
                task.uncancel()  # the client left: a normal end for us, not a cancellation
        finally:
            completed = state["done"] and not state["gone"]
            state["done"] = True
            watcher.cancel()
            await self._stream.aclose()
            if self._on_done is not None:
                self._on_done(completed)
