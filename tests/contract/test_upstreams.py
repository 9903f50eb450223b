"""One contract over every `Upstream` implementation, each against the real fake server.

- `OpenAIUpstream`: the fast path (OpenAI wire format), over aiohttp and over httpx.
- `LiteLLMUpstream` with `anthropic/...`: litellm translating to Anthropic's Messages API.
- `LiteLLMUpstream` with `openai/...`: litellm speaking OpenAI's format.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from router.errors import UpstreamError, UpstreamTimeout
from router.testing.processes import ServerProcess
from router.upstreams.base import Reply, Upstream
from router.upstreams.factory import HttpClient, make_sender
from router.upstreams.litellm import LiteLLMUpstream
from router.upstreams.openai import OpenAIUpstream
from router.upstreams.transports.base import SenderConfig


def _fast_path(client: HttpClient) -> Callable[[ServerProcess, float], Upstream]:
    def make(fake: ServerProcess, timeout_s: float) -> Upstream:
        config = SenderConfig(
            "t",
            f"{fake.url}/v1/chat/completions",
            [("content-type", "application/json")],
            timeout_s,
            2.0,
            8,
        )
        return OpenAIUpstream("t", "m1", make_sender(config, client))

    return make


def _litellm_anthropic(fake: ServerProcess, timeout_s: float) -> Upstream:
    return LiteLLMUpstream("t", "anthropic/claude-test", fake.url, "fake-key", timeout_s)


def _litellm_openai(fake: ServerProcess, timeout_s: float) -> Upstream:
    return LiteLLMUpstream("t", "openai/m1", f"{fake.url}/v1", "fake-key", timeout_s)


@pytest.fixture(
    params=[_fast_path("aiohttp"), _fast_path("httpx"), _litellm_anthropic, _litellm_openai],
    ids=["fast-path-aiohttp", "fast-path-httpx", "litellm-anthropic", "litellm-openai"],
)
async def upstream(
    request: pytest.FixtureRequest, fake_upstream: ServerProcess
) -> AsyncIterator[Upstream]:
    made: Upstream = request.param(fake_upstream, 1.0)
    yield made
    await made.aclose()


def _body(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "ignored",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 50,
        **extra,
    }


async def test_complete_returns_openai_json_with_usage(upstream: Upstream) -> None:
    reply = await upstream.complete(_body("hello there [[chunks:4]]"))
    assert reply.status == 200
    data = json.loads(reply.body)
    assert data["choices"][0]["message"]["content"].split()[:3] == ["w0", "w1", "w2"]
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert reply.usage.prompt_tokens == 3


async def test_stream_yields_sse_and_usage(upstream: Upstream) -> None:
    opened = await upstream.stream(
        _body("hello [[chunks:6]]", stream=True, stream_options={"include_usage": True})
    )
    assert not isinstance(opened, Reply)
    raw = b""
    try:
        async for chunk in opened:
            raw += chunk
    finally:
        await opened.aclose()
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    assert events[-1] == b"data: [DONE]"
    chunks = [json.loads(e[5:]) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.split()[:5] == ["w0", "w1", "w2", "w3", "w4"]
    assert opened.usage is not None and opened.usage.completion_tokens == 6


async def test_server_error_raises_upstream_error(upstream: Upstream) -> None:
    with pytest.raises(UpstreamError):
        await upstream.complete(_body("[[status:500]]"))


async def test_client_error_comes_back_as_reply(upstream: Upstream) -> None:
    reply = await upstream.complete(_body("[[status:400]]"))
    assert reply.status == 400
    assert "error" in json.loads(reply.body)


async def test_slow_answer_times_out(upstream: Upstream) -> None:
    with pytest.raises(UpstreamTimeout):
        await upstream.complete(_body("[[sleep:3]]"))


async def test_unreachable_upstream_is_an_upstream_error() -> None:
    dead = ServerProcess(["true"], 9)  # nothing listens on the discard port
    for factory in (_fast_path("aiohttp"), _fast_path("httpx")):
        made = factory(dead, 1.0)
        with pytest.raises(UpstreamError):
            await made.complete(_body("hi"))
        await made.aclose()
