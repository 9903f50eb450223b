"""Calling the chosen tier, and what happens when it cannot answer.

For one routed request: reserve its budget, call the tier (retrying 429/5xx with jittered
backoff when the tier allows `retries`), and, when `routing.fallback` is on and the tier fails
(connection refused, 5xx, timeout, an open circuit breaker) or an `auto` request finds it
saturated, try the other tier once, budget and privacy permitting (a `local_only` request never
leaves local tiers). Streams can fall back until their first chunk has arrived; after that the
client has bytes and a failure ends the stream with an error event. With `routing.escalate`, a
non-streamed cheap answer that fails a cheap check is retried once on the frontier.

Every attempt is settled (or released) and logged by `Call.finish`, in the background.

A request that arrived in another wire format (Anthropic's Messages API) carries a `Wire` on
`Routed`: it supplies the `Upstream` to call on each tier (translating, or passing through to a
tier that speaks that format natively). Requests without one (the OpenAI endpoint) pay nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starlette.responses import Response

from policies import Decision, decide
from router.auth import Caller
from router.budgeting import Admission
from router.errors import ProxyError, UpstreamError, UpstreamTimeout
from router.ledger import RequestRecord
from router.relay import RelayResponse
from router.upstream import Reply, Stream, Upstream, Usage

if TYPE_CHECKING:
    from router.state import ProxyState

__all__ = ["Call", "Routed", "Wire", "decision_headers", "dispatch", "route"]

log = logging.getLogger("tierwise")

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|i cannot|i can'?t|i'?m unable|i am unable|as an ai)", re.I
)


def decision_headers(decision: Decision, request_id: str) -> dict[str, str]:
    return {
        "x-tierwise-tier": decision.tier,
        "x-tierwise-model": decision.model,
        "x-tierwise-difficulty": f"{decision.difficulty:.4f}",
        "x-tierwise-threshold": f"{decision.threshold:.4f}",
        "x-tierwise-reason": decision.reason,
        "x-tierwise-request-id": request_id,
    }


class Wire(Protocol):
    """A client wire format other than OpenAI's chat completions."""

    def upstream(self, tier: str, upstream: Upstream) -> Upstream:
        """What to call on `tier` (whose OpenAI-speaking upstream is `upstream`); its answers,
        error replies and streams are already in the client's format."""
        ...

    def message(self, body: bytes) -> dict[str, Any]:
        """The OpenAI-style assistant message (`content`, `tool_calls`) of a 200 answer."""
        ...


@dataclass(slots=True)
class Routed:
    """A request that has been parsed, scored and given a first decision."""

    state: ProxyState
    rid: str
    arrived: float
    started: float
    caller: Caller
    body: dict[str, Any]
    decision: Decision
    stream: bool
    prompt: str | None
    local_only: bool
    wire: Wire | None = None


_TRUE = ("1", "true", "yes")


async def route(
    state: ProxyState,
    rid: str,
    arrived: float,
    started: float,
    caller: Caller,
    headers: Mapping[str, str],
    body: dict[str, Any],
    text: str,
    wire: Wire | None = None,
) -> Routed:
    """Score `text`, decide, apply `x-tierwise-local-only` and the budgets' pacing: the
    `Routed` request for `dispatch` (`body` is an OpenAI chat body). A scorer that declares
    itself blocking runs on the state's scorer threads; the fast one inline (~40 us)."""
    scoring = state.scoring
    if scoring.blocking:
        difficulty = await state.score_off_loop(scoring.scorer, text)
    else:
        difficulty = scoring.scorer.difficulty(text)
    local_only = headers.get("x-tierwise-local-only", "").lower() in _TRUE
    decision = decide(state.policy, body["model"], difficulty, scoring.threshold)
    if local_only and not state.policy.tiers[decision.tier].local:
        decision = state.gate.local_only(decision)
    decision = await state.gate.adjust(decision, caller.label, caller.team)
    prompt = text if state.policy.logging.prompts else None
    stream = bool(body.get("stream"))
    return Routed(
        state, rid, arrived, started, caller, body, decision, stream, prompt, local_only, wire
    )


def _upstream(r: Routed, tier: str) -> Upstream:
    upstream = r.state.upstreams[tier]
    return upstream if r.wire is None else r.wire.upstream(tier, upstream)


@dataclass(slots=True)
class Call:
    """One attempt on one tier: what `finish` needs to settle and log it."""

    routed: Routed
    rid: str
    decision: Decision
    admission: Admission
    finished: bool = False

    def __post_init__(self) -> None:
        self.routed.state.health.inflight[self.decision.tier] += 1

    def finish(self, status: int, usage: Usage | None, ok: bool) -> int:
        """Settle (or release) in the background and log the attempt; returns its cost."""
        if self.finished:
            return 0
        self.finished = True
        r, d = self.routed, self.decision
        state, gate = r.state, r.state.gate
        state.health.inflight[d.tier] -= 1
        cost = gate.cost(self.admission, usage) if ok else 0
        equivalent = gate.frontier_equivalent(usage) if ok else 0
        if ok:
            state.background(gate.settle(self.rid, self.admission, cost, equivalent))
        else:
            state.background(gate.release(self.rid, self.admission))
        state.alerts.observed(d.tier, d.reason, d.difficulty, status)
        state.store.requests.append(
            RequestRecord(
                request_id=self.rid,
                time=r.arrived,
                caller=r.caller.label,
                team=r.caller.team,
                tier=d.tier,
                model=d.model,
                difficulty=d.difficulty,
                threshold=d.threshold,
                reason=d.reason,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                cost_micros=cost,
                counterfactual_micros=equivalent,
                latency_ms=(time.perf_counter() - r.started) * 1000,
                status=status,
                stream=r.stream,
                prompt=r.prompt,
            )
        )
        return cost


class _Retryable(Exception):
    """A 429 the tier answered: retried, then treated as a failure when a fallback exists."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def _other(r: Routed, tier: str) -> str | None:
    routing = r.state.policy.routing
    if not routing.fallback:
        return None
    other = routing.frontier_tier if tier == routing.cheap_tier else routing.cheap_tier
    if other == tier or (r.local_only and not r.state.policy.tiers[other].local):
        return None
    return other


def _switch(r: Routed, decision: Decision, tier: str, reason: str) -> Decision:
    model = r.state.policy.tiers[tier].model
    return dataclasses.replace(decision, tier=tier, model=model, reason=reason)


async def dispatch(r: Routed) -> Response | RelayResponse:
    """Serve a routed request; raises the last `ProxyError` when no tier could answer."""
    state = r.state
    decision = r.decision
    tried: list[str] = []
    failure: Exception | None = None
    for attempt in range(2):
        tier = decision.tier
        fallback = _other(r, tier) if attempt == 0 else None
        skip = None
        if fallback is not None and decision.reason != "pinned" and state.health.saturated(tier):
            skip = "saturated"
        elif not state.health.allow(tier):
            skip = "breaker_open"
            failure = UpstreamError(tier, "circuit breaker open (the tier keeps failing)")
        if skip is not None:
            tried.append(f"{tier}:{skip}")
            if fallback is None:
                break
            decision = _switch(r, decision, fallback, f"fallback:{tier}_{skip}")
            continue
        rid = r.rid if attempt == 0 else f"{r.rid}-{attempt}"
        admission = await state.gate.admit(rid, decision, r.caller.label, r.caller.team, r.body)
        call = Call(r, rid, admission.decision, admission)
        headers = decision_headers(call.decision, r.rid) | admission.headers()
        if tried:
            headers["x-tierwise-fallback"] = ",".join(tried)
        try:
            return await _serve(call, headers)
        except (UpstreamError, UpstreamTimeout, _Retryable) as exc:
            state.health.failure(call.decision.tier)
            status = exc.reply.status if isinstance(exc, _Retryable) else exc.status
            call.finish(status, None, ok=False)
            if isinstance(exc, _Retryable) and fallback is None:
                return Response(exc.reply.body, exc.reply.status, headers, "application/json")
            failure = exc
            why = "timeout" if isinstance(exc, UpstreamTimeout) else "error"
            tried.append(f"{call.decision.tier}:{why}")
            if fallback is None:
                break
            decision = _switch(r, decision, fallback, f"fallback:{call.decision.tier}_{why}")
        except BaseException:  # anything else: free the reservation and the slot, then report
            call.finish(500, None, ok=False)
            raise
    assert failure is not None
    if isinstance(failure, _Retryable):
        failure = UpstreamError(decision.tier, f"HTTP {failure.reply.status}")
    if len(tried) > 1 and isinstance(failure, ProxyError):
        failure.message += f" (tried: {', '.join(tried)})"
    raise failure


async def _with_retries(call: Call, attempt: Any) -> Any:
    """Run `attempt()`; on 429/5xx retry up to the tier's `retries` with jittered backoff."""
    retries = call.routed.state.policy.tiers[call.decision.tier].retries
    for k in range(retries + 1):
        try:
            result = await attempt()
            if isinstance(result, Reply) and result.status == 429:
                raise _Retryable(result)
            return result
        except (UpstreamError, _Retryable):
            if k == retries:
                raise
        await asyncio.sleep(min(0.1 * 2**k, 2.0) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


async def _serve(call: Call, headers: dict[str, str]) -> Response | RelayResponse:
    r = call.routed
    state = r.state
    tier = state.policy.tiers[call.decision.tier]
    upstream = _upstream(r, call.decision.tier)
    r.body["model"] = upstream.model_name
    if r.stream:
        return await _stream(call, upstream, headers)

    async def once() -> Reply:
        if tier.total_timeout_s is None:
            return await upstream.complete(r.body)
        try:
            async with asyncio.timeout(tier.total_timeout_s):
                return await upstream.complete(r.body)
        except TimeoutError:
            raise UpstreamTimeout(call.decision.tier, tier.total_timeout_s) from None

    reply: Reply = await _with_retries(call, once)
    state.health.success(call.decision.tier)
    check = _escalation_check(call, reply)
    cost = call.finish(reply.status, reply.usage, ok=reply.status == 200)
    if check is not None:
        escalated = await _escalate(call, check)
        if escalated is not None:
            return escalated
    if reply.status == 200:
        headers["x-tierwise-cost-usd"] = f"{cost / 1e6:.6f}"
    return Response(reply.body, reply.status, headers, "application/json")


def _escalation_check(call: Call, reply: Reply) -> str | None:
    """Why a cheap answer should go to the frontier (`routing.escalate`), or None."""
    r = call.routed
    routing = r.state.policy.routing
    if not routing.escalate or call.decision.tier != routing.cheap_tier or reply.status != 200:
        return None
    if _other(r, call.decision.tier) is None:
        return None
    try:
        if r.wire is not None:
            message = r.wire.message(reply.body)
        else:
            message = json.loads(reply.body)["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "malformed"
    if message.get("tool_calls"):
        return None
    content = message.get("content") or ""
    if not content.strip():
        return "empty"
    if _REFUSAL.match(content):
        return "refusal"
    wants = (r.body.get("response_format") or {}).get("type")
    if wants in ("json_object", "json_schema"):
        try:
            json.loads(content)
        except ValueError:
            return "invalid_json"
    return None


async def _escalate(call: Call, check: str) -> Response | None:
    """Retry once on the frontier; None (keep the cheap answer) when that is not possible."""
    r = call.routed
    frontier = r.state.policy.routing.frontier_tier
    decision = _switch(r, call.decision, frontier, f"escalated:{check}")
    rid = f"{r.rid}-escalated"
    try:
        admission = await r.state.gate.admit(rid, decision, r.caller.label, r.caller.team, r.body)
    except Exception as exc:
        log.info("escalation of %s not possible: %s", r.rid, exc)
        return None
    if admission.decision.tier != frontier:  # a budget sent it back to cheap: keep what we have
        await r.state.gate.release(rid, admission)
        return None
    second = Call(r, rid, admission.decision, admission)
    headers = decision_headers(second.decision, r.rid) | admission.headers()
    headers["x-tierwise-escalated-from"] = call.decision.tier
    upstream = _upstream(r, frontier)
    try:
        reply = await upstream.complete(r.body | {"model": upstream.model_name})
    except (UpstreamError, UpstreamTimeout) as exc:
        second.finish(exc.status, None, ok=False)
        return None
    cost = second.finish(reply.status, reply.usage, ok=reply.status == 200)
    if reply.status != 200:
        return None
    headers["x-tierwise-cost-usd"] = f"{cost / 1e6:.6f}"
    return Response(reply.body, 200, headers, "application/json")


async def _stream(
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
        try:
            async with asyncio.timeout(limit):
                opened = await upstream.stream(r.body, strip_usage=not wants_usage)
                if isinstance(opened, Reply):
                    return opened
                chunks = opened.__aiter__()
                first = await anext(chunks, b"")
        except TimeoutError:
            if opened is not None and not isinstance(opened, Reply):
                await opened.aclose()
            raise UpstreamTimeout(call.decision.tier, limit or 0) from None
        except BaseException:
            if opened is not None and not isinstance(opened, Reply):
                await opened.aclose()
            raise
        return _Prefetched(opened, first, chunks), first

    result = await _with_retries(call, open_first)
    if isinstance(result, Reply):
        r.state.health.success(call.decision.tier)
        call.finish(result.status, None, ok=False)
        return Response(result.body, result.status, headers, "application/json")
    stream, _ = result
    r.state.health.success(call.decision.tier)

    def done(completed: bool) -> None:
        # a client that hangs up still pays for what the upstream produced (the reservation,
        # when the usage never arrived)
        call.finish(200 if completed else 499, stream.usage, ok=True)

    return RelayResponse(stream, headers | _SSE_HEADERS, on_done=done)


class _Prefetched:
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

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._first
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
