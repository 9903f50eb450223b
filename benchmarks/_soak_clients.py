"""The soak's traffic: clients on the official `openai` and `anthropic` SDKs, each request of a
kind (healthy, failing on its own, streamed, a stream the client drops), every outcome kept.

A client sends to one replica and, when that replica refuses the connection (it is stopping or
down), to the other, as a load balancer would; such connection errors are counted with the
replica and time, so the soak can check they happened only while that replica was restarting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai

__all__ = ["KINDS", "Kind", "Outcome", "Traffic"]


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    api: str  # "openai" (chat completions) or "anthropic" (messages)
    directive: str = ""  # fake-upstream directives put in the prompt
    model: str = "auto"
    stream: bool = False
    drop: bool = False  # the client hangs up after the first chunks
    own_fault: bool = False  # fails because of the request itself, on any healthy tier


_NOT_ANSWERED = ("ConnectError", "RemoteProtocolError", "ReadError", "WriteError")
"""httpx errors (by class name: the two SDKs bundle their own httpx) of a call no answer began."""
_SLOW_STREAM = "[[chunks:40]] [[chunk_delay:0.1]]"  # 4 s: the client hangs up mid-stream
KINDS: tuple[Kind, ...] = (
    Kind("chat", 44, "openai"),
    Kind("messages", 14, "anthropic"),
    Kind("chat_stream", 5, "openai", stream=True),
    Kind("messages_stream", 3, "anthropic", stream=True),
    Kind("dropped_stream", 4, "openai", _SLOW_STREAM, stream=True, drop=True),
    Kind("dropped_messages_stream", 2, "anthropic", _SLOW_STREAM, stream=True, drop=True),
    Kind("fails_everywhere", 6, "openai", "[[status:500]]", own_fault=True),
    Kind("too_slow_everywhere", 4, "openai", "[[sleep:1.5]]", own_fault=True),
    Kind("fails_on_cheap", 5, "openai", "[[status:500@cheap-model]]"),
    Kind("rejected_by_upstream", 3, "anthropic", "[[status:400]]", own_fault=True),
    Kind("pinned_cheap", 5, "openai", model="cheap"),
    Kind("pinned_frontier", 5, "anthropic", model="frontier"),
)


@dataclass
class Outcome:
    t: float  # seconds since the soak started, when the request was sent
    kind: str
    api: str
    replica: int
    status: int | str  # the HTTP status the client saw, "dropped", or "lost" (no answer)
    request_id: str | None
    cost_usd: str | None  # the x-tierwise-cost-usd header, when there was one
    tier: str | None
    latency_s: float
    detail: str = ""


@dataclass
class Traffic:
    urls: Sequence[str]  # one per replica
    keys: Sequence[str]  # API keys, one per simulated caller
    prompts: Sequence[str]
    started: float  # time.monotonic() of the soak's start
    seed: int = 7
    outcomes: list[Outcome] = field(default_factory=list)
    reconnects: list[dict[str, Any]] = field(default_factory=list)  # refused connections

    async def run(self, clients: int, until: float) -> None:
        """`clients` concurrent loops, each sending one request at a time until `until`."""
        await asyncio.gather(*(self._client(i, until) for i in range(clients)))

    async def _client(self, i: int, until: float) -> None:
        rng = random.Random(self.seed * 1000 + i)
        key = self.keys[i % len(self.keys)]
        sdks = [_sdks(url, key) for url in self.urls]
        weights = [k.weight for k in KINDS]
        try:
            n = 0
            while time.monotonic() < until:
                kind = rng.choices(KINDS, weights)[0]
                prompt = f"{rng.choice(self.prompts)[:1500]} (client {i}, #{n}) {kind.directive}"
                first = (i + n) % len(self.urls)
                self.outcomes.append(await self._one(sdks, first, kind, prompt.strip()))
                n += 1
        finally:
            for oa, an in sdks:
                await oa.close()
                await an.close()

    async def _one(
        self, sdks: list[tuple[Any, Any]], first: int, kind: Kind, prompt: str
    ) -> Outcome:
        t = time.monotonic()
        order = [(first + j) % len(sdks) for j in range(len(sdks))]
        for replica in order:
            try:
                status, rid, cost, tier = await _send(sdks[replica], kind, prompt)
            except (openai.APIConnectionError, anthropic.APIConnectionError) as exc:
                cause = exc.__cause__
                if type(cause).__name__ in _NOT_ANSWERED:
                    # refused (stopping or down), or a keep-alive connection it closed (or
                    # reset) while stopping: nothing was answered; sent elsewhere, as a load
                    # balancer or the SDKs' own retries would. Had the replica served it after
                    # all, its record would have no client (`records_without_a_client`).
                    self.reconnects.append(
                        {"t": t - self.started, "replica": replica, "error": type(cause).__name__}
                    )
                    continue
                detail = f"{exc!r} caused by {cause!r}"
                return self._outcome(t, kind, replica, "lost", None, None, None, detail)
            return self._outcome(t, kind, replica, status, rid, cost, tier)
        return self._outcome(t, kind, first, "lost", None, None, None, "no replica answered")

    def _outcome(
        self,
        t: float,
        kind: Kind,
        replica: int,
        status: int | str,
        rid: str | None,
        cost: str | None,
        tier: str | None,
        detail: str = "",
    ) -> Outcome:
        return Outcome(
            t - self.started,
            kind.name,
            kind.api,
            replica,
            status,
            rid,
            cost,
            tier,
            time.monotonic() - t,
            detail,
        )


def _sdks(url: str, key: str) -> tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic]:
    timeout = 30.0  # a float: the anthropic SDK may be built on another httpx
    return (
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=timeout),
        anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0, timeout=timeout),
    )


Sent = tuple[int | str, str | None, str | None, str | None]


def _headers(h: Any, status: int | str) -> Sent:
    return (
        status,
        h.get("x-tierwise-request-id"),
        h.get("x-tierwise-cost-usd"),
        h.get("x-tierwise-tier"),
    )


async def _send(sdk: tuple[Any, Any], kind: Kind, prompt: str) -> Sent:
    oa, an = sdk
    messages = [{"role": "user", "content": prompt}]
    try:
        if kind.api == "openai":
            if not kind.stream:
                raw = await oa.chat.completions.with_raw_response.create(
                    model=kind.model, messages=messages, max_tokens=32
                )
                raw.parse()
                return _headers(raw.headers, raw.status_code)
            async with oa.chat.completions.with_streaming_response.create(
                model=kind.model, messages=messages, max_tokens=64, stream=True
            ) as resp:
                return _headers(resp.headers, await _read(resp, kind.drop))
        if not kind.stream:
            raw = await an.messages.with_raw_response.create(
                model=kind.model, messages=messages, max_tokens=32
            )
            await raw.parse()  # anthropic's async raw response parses asynchronously
            return _headers(raw.headers, raw.status_code)
        async with an.messages.with_streaming_response.create(
            model=kind.model, messages=messages, max_tokens=64, stream=True
        ) as resp:
            return _headers(resp.headers, await _read(resp, kind.drop))
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        return _headers(exc.response.headers, exc.status_code)


async def _read(resp: Any, drop: bool) -> int | str:
    """Read the stream to its end, or hang up after two events when `drop`."""
    events = 0
    async for line in resp.iter_lines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload.startswith(('{"error"', '{"type":"error"', '{"type": "error"')):
                break  # the proxy ended the stream with an error event: it is over, not dropped
            events += 1
            if drop and events >= 2:
                return "dropped"  # leaving the `async with` closes the connection
    status: int = resp.status_code
    return status
