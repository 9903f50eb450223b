"""OpenAI-compatible fast path: vLLM, SGLang, llama.cpp, OpenAI, DeepSeek, Moonshot, MiniMax,
OpenRouter, ... The request body is sent as JSON and the answer's bytes are passed through
unchanged (streams chunk by chunk, never re-encoded); usage is sniffed as the bytes pass.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from router.errors import UpstreamError, check_upstream_status
from router.upstreams.base import Reply, Usage, UsageTap, read_and_close, refused_stream, usage_from
from router.upstreams.transports.base import RawResponse, Sender

__all__ = ["OpenAIStream", "OpenAIUpstream"]


class OpenAIStream:
    """Raw SSE bytes of an open upstream response."""

    def __init__(self, response: RawResponse, strip_usage: bool = False) -> None:
        self._response = response
        self._tap = UsageTap(strip_usage)
        self.status = response.status

    @property
    def usage(self) -> Usage | None:
        return self._tap.usage

    async def __aiter__(self) -> AsyncIterator[bytes]:
        feed = self._tap.feed
        async for chunk in self._response.iter_raw():
            out = feed(chunk)
            if out:
                yield out
        rest = self._tap.finish()
        if rest:
            yield rest

    async def aclose(self) -> None:
        await self._response.aclose()


class OpenAIUpstream:
    """`Upstream` for any OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, tier: str, model_name: str, sender: Sender) -> None:
        self.tier = tier
        self.model_name = model_name
        self._sender = sender

    async def _post(self, body: dict[str, Any]) -> RawResponse:
        return await self._sender.post(json.dumps(body, separators=(",", ":")).encode())

    async def complete(self, body: dict[str, Any]) -> Reply:
        response = await self._post(body)
        content = await read_and_close(response)
        check_upstream_status(self.tier, response.status)
        usage = None
        if response.status == 200:
            try:
                usage = usage_from(json.loads(content))
            except ValueError:
                raise UpstreamError(self.tier, "answer is not JSON") from None
        return Reply(response.status, content, usage)

    async def stream(self, body: dict[str, Any], strip_usage: bool = False) -> OpenAIStream | Reply:
        """An open stream, or a `Reply` when the upstream refused with a 4xx before streaming."""
        response = await self._post(body)
        if response.status != 200:
            return await refused_stream(self.tier, response)
        return OpenAIStream(response, strip_usage)

    async def aclose(self) -> None:
        await self._sender.aclose()
