"""Serving a stream: open it and read its first chunk within `first_token_timeout_s` (so a
failing tier can still fall back before the client has a byte), then relay the rest; the
call is settled from the usage the stream reported when it ends or the client hangs up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.responses import Response

from policies.budgets import prompt_token_bound
from router import tracing
from router.errors import UpstreamTimeout
from router.server.call import Call, with_retries
from router.server.relay import RelayResponse
from router.upstreams.base import Reply, Stream, Upstream, Usage

__all__ = ["Prefetched", "serve_stream"]

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def serve_stream(
    call: Call, upstream: Upstream, headers: dict[str, str]
) -> Response | RelayResponse:
    r = call.routed
    tier = r.state.policy.tiers[call.decision.tier]
    options = r.body.get("stream_options")
    options = options if isinstance(options, dict) else {}
    wants_usage = bool(options.get("include_usage"))
    r.body["stream_options"] = {**options, "include_usage": True}  # bill from real counts

    async def open_first() -> tuple[Stream, bytes] | Reply:
        """Open the stream and read its first chunk, within `first_token_timeout_s`."""
        limit = tier.first_token_timeout_s
        opened: Stream | Reply | None = None
        began = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                opened = await upstream.stream(r.body, strip_usage=not wants_usage)
                if isinstance(opened, Reply):
                    return opened
                chunks = opened.__aiter__()
                first = await anext(chunks, b"")
                r.ttft_s = time.perf_counter() - began
        except TimeoutError:
            if opened is not None and not isinstance(opened, Reply):
                await opened.aclose()
            raise UpstreamTimeout(call.decision.tier, limit or 0) from None
        except BaseException:
            if opened is not None and not isinstance(opened, Reply):
                await opened.aclose()
            raise
        return Prefetched(opened, first, chunks), first

    if tracing.enabled():
        with tracing.outgoing("upstream", tierwise_tier=call.decision.tier) as calling:
            result = await with_retries(call, open_first)
            if r.ttft_s is not None:
                calling.set_attribute("tierwise.ttft_s", r.ttft_s)
    else:
        result = await with_retries(call, open_first)
    if isinstance(result, Reply):
        r.state.health.success(call.decision.tier)
        call.finish(result.status, None, ok=False)
        return Response(result.body, result.status, headers, "application/json")
    stream, _ = result
    r.state.health.success(call.decision.tier)

    def done(completed: bool) -> None:
        # a client that hangs up still pays for what the upstream produced (the reservation,
        # when the usage never arrived)
        broke = relay.error
        reason = f"stream_failed:{broke.code}" if broke is not None else None
        if not completed:
            reason = "client_disconnected"
        usage = stream.usage
        if usage is None:  # an upstream that reports none (llama.cpp): a safe estimate
            bound = call.admission.prompt_bound or prompt_token_bound(
                r.body["messages"], r.body.get("tools")
            )
            usage = stream.estimated(bound)
        call.finish(200 if completed else 499, usage, ok=True, reason=reason)

    relay = RelayResponse(stream, headers | _SSE_HEADERS, on_done=done)
    return relay


class Prefetched:
    """A stream whose first chunk was already read (to time the first token and to allow a
    fallback before the client has seen any byte)."""

    def __init__(self, stream: Stream, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self._stream = stream
        self._first = first
        self._rest = rest
        self.status = stream.status

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage

    def estimated(self, prompt_bound: int) -> Usage | None:
        estimate = getattr(self._stream, "estimated", None)
        return estimate(prompt_bound) if estimate is not None else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._first
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
