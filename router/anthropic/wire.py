"""`AnthropicWire`: how `dispatch` serves a Messages-API request on any tier.

`dispatch` asks the wire for the `Upstream` to call on each tier it tries. On a tier served by
a native `AnthropicUpstream`, that is a pass-through (the client's body out, the answer's bytes
back); on any other tier, a translating wrapper (the OpenAI body that routing and budgets used
goes out, the answer comes back in Anthropic's shape, errors included).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from router.anthropic.events import EventTranslator, sse_event
from router.anthropic.translate import answer_message, to_anthropic
from router.errors import ProxyError, anthropic_error_body
from router.upstreams.anthropic import AnthropicUpstream
from router.upstreams.base import Reply, Stream, Upstream, Usage

__all__ = ["AnthropicWire"]


def _error_reply(reply: Reply) -> Reply:
    """An OpenAI-shaped error answer (a 4xx the tier sent) in Anthropic's shape."""
    message = f"upstream answered HTTP {reply.status}"
    try:
        error = json.loads(reply.body).get("error")
        if isinstance(error, dict) and error.get("message"):
            message = str(error["message"])
    except (ValueError, AttributeError):
        pass
    return Reply(reply.status, anthropic_error_body(reply.status, message), reply.usage)


class _WireStream:
    """A stream re-encoded chunk by chunk; a failure after the first byte becomes an Anthropic
    `error` event (before it, the error propagates so that `dispatch` can fall back)."""

    def __init__(
        self,
        inner: Stream,
        convert: Callable[[bytes], bytes],
        finish: Callable[[], bytes],
        error: Callable[[str], bytes],
    ) -> None:
        self._inner = inner
        self._convert = convert
        self._finish = finish
        self._error = error
        self.status = inner.status

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = False
        try:
            async for chunk in self._inner:
                out = self._convert(chunk)
                if out:
                    sent = True
                    yield out
        except ProxyError as exc:
            if not sent:
                raise
            yield self._error(exc.message)
            return
        rest = self._finish()
        if rest:
            yield rest

    async def aclose(self) -> None:
        await self._inner.aclose()


def _error_event(message: str) -> bytes:
    return sse_event("error", {"error": {"type": "api_error", "message": message}})


class _Translating:
    """`Upstream` adapter: calls an OpenAI-speaking tier, answers in Anthropic's shape."""

    def __init__(self, inner: Upstream, model: str, input_tokens: int) -> None:
        self.tier = inner.tier
        self.model_name = inner.model_name
        self._inner = inner
        self._model = model
        self._input_tokens = input_tokens

    async def complete(self, body: dict[str, Any]) -> Reply:
        reply = await self._inner.complete(body)
        if reply.status != 200:
            return _error_reply(reply)
        try:
            payload = json.loads(reply.body)
        except ValueError:
            return Reply(502, anthropic_error_body(502, "upstream answer is not JSON"))
        answer = to_anthropic(payload, self._model)
        return Reply(200, json.dumps(answer).encode(), reply.usage)

    async def stream(self, body: dict[str, Any], strip_usage: bool = False) -> Stream | Reply:
        opened = await self._inner.stream(body, strip_usage=False)  # usage feeds message_delta
        if isinstance(opened, Reply):
            return _error_reply(opened)
        events = EventTranslator(self._model, self._input_tokens)
        return _WireStream(opened, events.feed, events.finish, events.error)

    async def aclose(self) -> None:
        """The tier's upstream belongs to the proxy state."""


class _PassThrough:
    """`Upstream` adapter: sends the client's own Messages body to a native Anthropic tier."""

    def __init__(self, native: AnthropicUpstream, body: dict[str, Any]) -> None:
        self.tier = native.tier
        self.model_name = native.model_name
        self._native = native
        self._body = body

    def _sent(self, body: dict[str, Any]) -> dict[str, Any]:
        """The client's body, with `max_tokens` lowered where a budget lowered it (`body` is
        the OpenAI one the budget gate saw)."""
        cap = body.get("max_tokens")
        if isinstance(cap, int) and cap < self._body.get("max_tokens", cap + 1):
            return self._body | {"max_tokens": cap}
        return self._body

    async def complete(self, body: dict[str, Any]) -> Reply:
        return await self._native.complete(self._sent(body))

    async def stream(self, body: dict[str, Any], strip_usage: bool = False) -> Stream | Reply:
        opened = await self._native.stream(self._sent(body))
        if isinstance(opened, Reply):
            return opened
        return _WireStream(opened, lambda chunk: chunk, lambda: b"", _error_event)

    async def aclose(self) -> None:
        """The native upstream belongs to the Messages endpoint."""


class AnthropicWire:
    """The `Wire` of one Messages-API request (see `router.server.routing.Wire`)."""

    __slots__ = ("_body", "_input_tokens", "_natives")

    def __init__(
        self, body: dict[str, Any], natives: Mapping[str, AnthropicUpstream], input_tokens: int
    ) -> None:
        """`body`: the client's Messages body; `natives`: tiers that speak it natively;
        `input_tokens`: the estimate a translated stream's `message_start` reports."""
        self._body = body
        self._natives = natives
        self._input_tokens = input_tokens

    def upstream(self, tier: str, upstream: Upstream) -> Upstream:
        native = self._natives.get(tier)
        if native is not None:
            return _PassThrough(native, self._body)
        return _Translating(upstream, self._body["model"], self._input_tokens)

    def message(self, body: bytes) -> dict[str, Any]:
        """The OpenAI-style assistant message of an answer (for escalation checks)."""
        return answer_message(json.loads(body))
