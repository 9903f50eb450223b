"""`AnthropicUpstream`: Anthropic's native `POST /v1/messages`, for Messages-API requests routed
to an `anthropic/...` tier. The request body goes out as the client sent it (model name
replaced) and the answer's bytes come back unchanged; usage is read from the JSON answer, or
from the `message_start` / `message_delta` events as they pass.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from router.errors import UpstreamError, check_upstream_status
from router.upstreams.base import Reply, Usage, read_and_close, refused_stream
from router.upstreams.transports.base import RawResponse, Sender

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
    """Raw Anthropic SSE bytes of an open response; only events mentioning usage are parsed."""

    def __init__(self, response: RawResponse) -> None:
        self._response = response
        self._pending = b""
        self.status = response.status
        self.usage: Usage | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.iter_raw():
            if self._pending or b'"usage"' in chunk:
                self._tap(chunk)
            yield chunk

    def _tap(self, chunk: bytes) -> None:
        events = (self._pending + chunk).split(b"\n\n")
        self._pending = events.pop()
        if len(self._pending) > 1 << 20:
            self._pending = b""
        for event in events:
            if b'"usage"' not in event:
                continue
            for line in event.splitlines():
                if not line.startswith(b"data:"):
                    continue
                try:
                    payload = json.loads(line[5:])
                except ValueError:
                    continue
                if not isinstance(payload, dict):
                    continue
                source = (
                    payload.get("message") if payload.get("type") == "message_start" else payload
                )
                if isinstance(source, dict):
                    self.usage = anthropic_usage(source.get("usage"), self.usage)

    async def aclose(self) -> None:
        await self._response.aclose()


class AnthropicUpstream:
    """Calls one Anthropic tier's Messages endpoint with an Anthropic request body."""

    def __init__(self, tier: str, model_name: str, sender: Sender) -> None:
        self.tier = tier
        self.model_name = model_name
        self._sender = sender

    async def _post(self, body: dict[str, Any]) -> RawResponse:
        payload = body | {"model": self.model_name}
        return await self._sender.post(json.dumps(payload, separators=(",", ":")).encode())

    async def complete(self, body: dict[str, Any]) -> Reply:
        response = await self._post(body)
        content = await read_and_close(response)
        check_upstream_status(self.tier, response.status)
        usage = None
        if response.status == 200:
            try:
                usage = anthropic_usage(json.loads(content).get("usage"))
            except (ValueError, AttributeError):
                raise UpstreamError(self.tier, "answer is not a JSON object") from None
        return Reply(response.status, content, usage)

    async def stream(self, body: dict[str, Any]) -> AnthropicStream | Reply:
        """An open stream, or a `Reply` when the upstream refused with a 4xx before streaming."""
        response = await self._post(body | {"stream": True})
        if response.status != 200:
            return await refused_stream(self.tier, response)
        return AnthropicStream(response)

    async def aclose(self) -> None:
        await self._sender.aclose()
