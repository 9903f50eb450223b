"""OpenAI-compatible fast path: vLLM, SGLang, llama.cpp, OpenAI, DeepSeek, Moonshot, MiniMax,
OpenRouter, ... The request body is sent as JSON and the answer's bytes are passed through
unchanged (streams chunk by chunk, never re-encoded); usage is sniffed as the bytes pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from router.upstreams.base import JsonUpstream, Reply, Usage, UsageTap, usage_from
from router.upstreams.transports.base import RawResponse

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

    def estimated(self, prompt_bound: int) -> Usage:
        return self._tap.estimated(prompt_bound)

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


class OpenAIUpstream(JsonUpstream):
    """`Upstream` for any OpenAI-compatible `/chat/completions` endpoint."""

    def _usage(self, answer: dict[str, Any]) -> Usage | None:
        return usage_from(answer)

    async def stream(self, body: dict[str, Any], strip_usage: bool = False) -> OpenAIStream | Reply:
        """An open stream, or a `Reply` when the upstream refused with a 4xx before streaming."""
        opened = await self._open(body)
        return opened if isinstance(opened, Reply) else OpenAIStream(opened, strip_usage)
