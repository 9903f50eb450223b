"""`AnthropicUpstream`: Anthropic's native `POST /v1/messages`, for Messages-API requests routed
to an `anthropic/...` tier. The request body goes out as the client sent it (model name
replaced) and the answer's bytes come back unchanged; usage is read from the JSON answer, or
from the `message_start` / `message_delta` events as they pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from router.upstreams.base import JsonUpstream, Reply, SSEEvents, Usage, event_data
from router.upstreams.transports.base import RawResponse

__all__ = [
    "ANTHROPIC_API_BASE",
    "ANTHROPIC_VERSION",
    "AnthropicStream",
    "AnthropicUpstream",
    "anthropic_usage",
    "messages_url",
]

ANTHROPIC_API_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


def messages_url(api_base: str | None) -> str:
    """`{api_base}/v1/messages`, accepting bases given with or without `/v1` (as litellm does)."""
    base = (api_base or ANTHROPIC_API_BASE).rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


def anthropic_usage(usage: Any, previous: Usage | None = None) -> Usage | None:
    """Billing usage from an Anthropic usage object; cache reads and writes count as input.
    Counts missing from a `message_delta` keep their `previous` (message_start) value."""
    if not isinstance(usage, dict):
        return previous
    try:
        keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        if any(usage.get(k) is not None for k in keys):
            prompt = sum(int(usage.get(k) or 0) for k in keys)
        else:
            prompt = previous.prompt_tokens if previous else 0
        output = usage.get("output_tokens")
        completion = (
            int(output) if output is not None else (previous.completion_tokens if previous else 0)
        )
    except (TypeError, ValueError):
        return previous
    return Usage(prompt, completion)


class AnthropicStream:
    """Raw Anthropic SSE bytes of an open response, passed on unchanged; only events mentioning
    usage are parsed (`message_start` carries the input counts, `message_delta` the output)."""

    def __init__(self, response: RawResponse) -> None:
        self._response = response
        self._events = SSEEvents()
        self.status = response.status
        self.usage: Usage | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.iter_raw():
            if self._events.holding or b'"usage"' in chunk:
                for event in self._events.split(chunk):
                    if b'"usage"' in event:
                        self._read(event_data(event))
            yield chunk

    def _read(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        source = payload.get("message") if payload.get("type") == "message_start" else payload
        if isinstance(source, dict):
            self.usage = anthropic_usage(source.get("usage"), self.usage)

    async def aclose(self) -> None:
        await self._response.aclose()


class AnthropicUpstream(JsonUpstream):
    """Calls one Anthropic tier's Messages endpoint with an Anthropic request body."""

    def _payload(self, body: dict[str, Any]) -> dict[str, Any]:
        return body | {"model": self.model_name}

    def _usage(self, answer: dict[str, Any]) -> Usage | None:
        return anthropic_usage(answer.get("usage"))

    async def stream(self, body: dict[str, Any]) -> AnthropicStream | Reply:
        """An open stream, or a `Reply` when the upstream refused with a 4xx before streaming."""
        opened = await self._open(body | {"stream": True})
        return opened if isinstance(opened, Reply) else AnthropicStream(opened)
