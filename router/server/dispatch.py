"""Calling the chosen tier, and what happens when it cannot answer.

For one routed request: reserve its budget, call the tier (retrying 429/5xx with jittered
backoff when the tier allows `retries`), and, when `routing.fallback` is on and the tier fails
(connection refused, 5xx, timeout, an open circuit breaker, a missing `api_key_env` variable) or
an `auto` request finds it saturated, try the other tier once, budget and privacy permitting (a
`local_only` request never leaves local tiers; a pinned request falls back only with
`routing.fallback_pinned`). Each fallback is logged at WARNING with its cause, which the answer's
`x-tierwise-fallback` carries too (`cheap:error;cause=HTTP 500`). Streams can fall back until
their first chunk has arrived; after that the client has bytes and a failure ends the stream with
an error event. With `routing.escalate`, a non-streamed cheap answer that fails a cheap check is
retried once on the frontier.

Circuit breakers (`router.gates.breaker`) count a tier's failures, not a request's: a
connection-level failure (refused, reset, DNS, an answer that is not JSON) and refused
credentials (401/403) count on their tier at once; a 5xx or a timeout counts in full when the
other tier then answers the same request, and towards the failure rate only (never a streak)
when no other tier could check it (no fallback, a pinned request, the other tier's breaker
open, saturated, unconfigured, unreachable or its budget refusing). When the fallback fails
the request with a 5xx or timeout too, neither tier counts it: one prompt that fails
everywhere is the request's fault. 4xx answers (429 included) never count. A request counts
at most once per tier, its retries included.

Budgets: an `auto` request that a frontier budget refuses (`on_exhausted: reject`) goes to the
cheap tier when the cheap tier's budgets have room; `reject` answers 429 only when no tier the
request may use can take it. Pinned requests are refused by their tier's budget.

A local tier's `max_output_tokens` is sent upstream as `max_tokens` when the client set none.

Every attempt is settled (or released) by `Call.finish`, in the background, and every request
gets one request-log record with the status its client saw and a reason: the routing reason when
it was answered, else why not (`budget_exhausted:<budget>`, `ledger_unavailable`,
`failed:<tier>:<why>,...`, `client_disconnected`, `internal_error`).

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
from router.errors import BudgetExhausted, ProxyError, UpstreamError, UpstreamTimeout
from router.gates.access import Caller
from router.gates.blame import Blame
from router.gates.budget import Admission
from router.ledger import RequestRecord
from router.server.outcome import Outcome, refusal_reason
from router.server.relay import RelayResponse
from router.upstreams.base import Reply, Stream, Upstream, Usage

if TYPE_CHECKING:
    from router.server.state import ProxyState

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
    pinned: bool = False  # the client named a tier (or an alias of one)


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
    prompt = text if state.policy.logging.prompts else None
    stream = bool(body.get("stream"))
    r = Routed(
        state, rid, arrived, started, caller, body, decision, stream, prompt, local_only, wire
    )
    r.pinned = decision.reason == "pinned"
    if local_only and not state.policy.tiers[decision.tier].local:
        try:
            decision = state.gate.local_only(decision)
        except ProxyError as exc:
            _record(r, decision, exc.status, f"refused:{exc.code}")
            raise
    r.decision = await state.gate.adjust(decision, caller.label, caller.team)
    return r


def _upstream(r: Routed, tier: str) -> Upstream:
    upstream = r.state.upstreams[tier]
    return upstream if r.wire is None else r.wire.upstream(tier, upstream)


def _record(
    r: Routed,
    d: Decision,
    status: int,
    reason: str,
    usage: Usage | None = None,
    cost: int = 0,
    equivalent: int = 0,
    request_id: str | None = None,
) -> None:
    """Append the request's record to the request log (never blocks, never raises)."""
    r.state.store.requests.append(
        RequestRecord(
            request_id=request_id or r.rid,
            time=r.arrived,
            caller=r.caller.label,
            team=r.caller.team,
            tier=d.tier,
            model=d.model,
            difficulty=d.difficulty,
            threshold=d.threshold,
            reason=reason,
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


@dataclass(slots=True)
class Call:
    """One attempt on one tier: what `finish` needs to settle and log it."""

    routed: Routed
    rid: str
    decision: Decision
    admission: Admission
    finished: bool = False
    log_id: str | None = None  # its own request-log id (an escalation); None: the request's

    def __post_init__(self) -> None:
        self.routed.state.health.inflight[self.decision.tier] += 1

    def finish(
        self,
        status: int,
        usage: Usage | None,
        ok: bool,
        record: bool = True,
        reason: str | None = None,
    ) -> int:
        """Settle (or release) in the background and, with `record`, write the request's
        record (`reason`, default the decision's); returns the call's cost."""
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
        if record:
            _record(r, d, status, reason or d.reason, usage, cost, equivalent, self.log_id)
        return cost


class _Retryable(Exception):
    """A 429 the tier answered: retried, then treated as a failure when a fallback exists."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def _other(r: Routed, tier: str) -> str | None:
    routing = r.state.policy.routing
    if not routing.fallback or (r.pinned and not routing.fallback_pinned):
        return None
    other = routing.frontier_tier if tier == routing.cheap_tier else routing.cheap_tier
    if other == tier or (r.local_only and not r.state.policy.tiers[other].local):
        return None
    return other


def _switch(r: Routed, decision: Decision, tier: str, reason: str) -> Decision:
    model = r.state.policy.tiers[tier].model
    return dataclasses.replace(decision, tier=tier, model=model, reason=reason)


def _cause(exc: Exception) -> str:
    """The detail of an upstream failure, without the `upstream for tier ... failed:` prefix."""
    if isinstance(exc, _Retryable):
        return f"HTTP {exc.reply.status}"
    message = exc.message if isinstance(exc, ProxyError) else str(exc)
    tier = getattr(exc, "tier", None)
    return message.removeprefix(f"upstream for tier {tier!r} failed: ")


def _name_the_key(r: Routed, exc: Exception) -> None:
    """An upstream that refused tierwise's credentials: say which variable holds them."""
    if not isinstance(exc, UpstreamError) or exc.upstream_status not in (401, 403):
        return
    tier = r.state.policy.tiers.get(exc.tier)
    env = tier.api_key_env if tier is not None else None
    if env is None:
        exc.message += f" (tiers.{exc.tier} has no api_key_env; set one if it needs a key)"
    elif env not in exc.message:
        exc.message += f" (the key is read from {env}, tiers.{exc.tier}.api_key_env)"


def _cap_output(r: Routed, tier: str) -> bool:
    """A local tier's `max_output_tokens` as `max_tokens` when the client set none; True when
    it was added (taken out again before another tier is tried)."""
    config = r.state.policy.tiers[tier]
    body = r.body
    if not config.local or body.get("max_tokens") is not None:
        return False
    if body.get("max_completion_tokens") is not None:
        return False
    body["max_tokens"] = config.max_output_tokens
    return True


async def _admit(r: Routed, rid: str, decision: Decision, first: bool) -> Admission:
    """Reserve `decision`'s budget. On the `first` attempt, an `auto` request that a budget
    refuses on another tier goes to the cheap tier when that one has room; pinned requests
    (and fallbacks, which come from the cheap tier or have a failure to report) are not moved."""
    gate = r.state.gate
    try:
        return await gate.admit(rid, decision, r.caller.label, r.caller.team, r.body)
    except BudgetExhausted as exc:
        cheap = r.state.policy.routing.cheap_tier
        if r.pinned or not first or decision.tier == cheap:
            raise
        log.info("request %s: %s; trying the %s tier", r.rid, exc.message, cheap)
        moved = _switch(r, decision, cheap, f"{exc.code}:{exc.budget}")
        return await gate.admit(rid, moved, r.caller.label, r.caller.team, r.body)


def _tier_fault(exc: Exception) -> bool | None:
    """Is `exc` the tier's fault whatever the request (True: a connection-level failure, an
    unreadable answer, refused credentials), maybe the request's (False: a 5xx, a timeout), or
    no failure of the tier at all (None: a 429, which is the tier's own back-pressure)?"""
    if isinstance(exc, _Retryable):
        return None
    if isinstance(exc, UpstreamError):
        return exc.upstream_status is None or exc.upstream_status in (401, 403)
    return False


async def dispatch(r: Routed) -> Response | RelayResponse:
    """Serve a routed request; raises the last `ProxyError` when no tier could answer. A
    request that is not answered gets its request-log record here."""
    outcome = Outcome(r.decision)
    try:
        return await _dispatch(r, outcome)
    except asyncio.CancelledError:
        _record(r, outcome.decision, 499, "client_disconnected")
        raise
    except Exception as exc:
        status = exc.status if isinstance(exc, ProxyError) else 500
        _record(r, outcome.decision, status, refusal_reason(exc, outcome))
        raise


async def _dispatch(r: Routed, outcome: Outcome) -> Response | RelayResponse:
    blame = Blame(r.state.health)
    try:
        return await _attempts(r, outcome, blame)
    finally:
        blame.drop()  # a held failure whose fallback never ended (a cancelled request)


async def _attempts(r: Routed, outcome: Outcome, blame: Blame) -> Response | RelayResponse:
    state = r.state
    decision = r.decision
    failure: Exception | None = None
    for attempt in range(2):
        tier = decision.tier
        outcome.decision = decision
        fallback = _other(r, tier) if attempt == 0 else None
        skip = cause = None
        saturation = state.health.saturation(tier) if fallback and not r.pinned else None
        if tier in state.unconfigured:
            skip, cause = "error", state.unconfigured[tier]
            failure = UpstreamError(tier, cause)
        elif saturation is not None:
            skip, cause = "saturated", saturation
        elif not state.health.allow(tier):
            skip, cause = "breaker_open", state.health.breaker_cause(tier)
            failure = UpstreamError(tier, cause)
        if skip is not None and cause is not None:
            outcome.add(r, tier, skip, cause, fallback)
            if fallback is None:
                break
            decision = _switch(r, decision, fallback, f"fallback:{tier}_{skip}")
            continue
        rid = r.rid if attempt == 0 else f"{r.rid}-{attempt}"
        try:
            admission = await _admit(r, rid, decision, attempt == 0)
        except ProxyError as exc:  # a budget or the ledger refuses the fallback: report the cause
            if failure is None:
                raise
            outcome.add(r, tier, exc.code, exc.message, None)
            break
        call = Call(r, rid, admission.decision, admission)
        outcome.decision = call.decision
        if attempt == 0 and call.decision.tier != tier:  # a budget moved it to another tier
            fallback = _other(r, call.decision.tier)
        capped = _cap_output(r, call.decision.tier)
        headers = decision_headers(call.decision, r.rid) | admission.headers()
        if outcome.tried:
            headers["x-tierwise-fallback"] = outcome.header()
        try:
            response = await _serve(call, headers)
        except (UpstreamError, UpstreamTimeout, _Retryable) as exc:
            if capped:
                r.body.pop("max_tokens", None)
            _name_the_key(r, exc)
            cause = _cause(exc)
            blame.failed(call.decision.tier, _tier_fault(exc), cause, fallback is not None)
            status = exc.reply.status if isinstance(exc, _Retryable) else exc.status
            why = "timeout" if isinstance(exc, UpstreamTimeout) else "error"
            if isinstance(exc, _Retryable) and fallback is None:
                blame.settle(answered=False)
                outcome.add(r, call.decision.tier, f"http_{status}", cause, None)
                call.finish(status, None, ok=False, reason=outcome.failed())
                return Response(exc.reply.body, exc.reply.status, headers, "application/json")
            call.finish(status, None, ok=False, record=False)
            failure = exc
            outcome.add(r, call.decision.tier, why, cause, fallback)
            if fallback is None:
                break
            decision = _switch(r, call.decision, fallback, f"fallback:{call.decision.tier}_{why}")
        except BaseException:  # anything else: free the reservation and the slot, then report
            state.health.neutral(call.decision.tier)
            call.finish(500, None, ok=False, record=False)
            raise
        else:
            blame.settle(answered=True)  # the fallback answered: the first tier's fault
            return response
    blame.settle(answered=False)  # no fallback call was made (or it could not reach its tier)
    assert failure is not None
    if isinstance(failure, _Retryable):
        failure = UpstreamError(decision.tier, f"HTTP {failure.reply.status}")
    if len(outcome.tried) > 1 and isinstance(failure, ProxyError):
        tried = ", ".join(f"{tier}:{why}" for tier, why, _ in outcome.tried)
        failure.message += f" (tried: {tried})"
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
    second = Call(r, rid, admission.decision, admission, log_id=rid)
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
        broke = relay.error
        reason = f"stream_failed:{broke.code}" if broke is not None else None
        if not completed:
            reason = "client_disconnected"
        call.finish(200 if completed else 499, stream.usage, ok=True, reason=reason)

    relay = RelayResponse(stream, headers | _SSE_HEADERS, on_done=done)
    return relay


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
