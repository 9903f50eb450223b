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
import logging
import time

from starlette.responses import Response

from policies import Decision
from router import tracing
from router.errors import BudgetExhausted, ProxyError, UpstreamError, UpstreamTimeout
from router.gates.blame import Blame
from router.gates.budget import Admission
from router.server.call import Call, Retryable, record_request, with_retries
from router.server.escalation import escalate, escalation_check
from router.server.outcome import Outcome, refusal_reason
from router.server.relay import RelayResponse
from router.server.routing import Routed, decision_headers, other_tier, switch, upstream_for
from router.server.streaming import serve_stream
from router.upstreams.base import Reply

__all__ = ["dispatch"]

log = logging.getLogger("tierwise")


def _cause(exc: Exception) -> str:
    """The detail of an upstream failure, without the `upstream for tier ... failed:` prefix."""
    if isinstance(exc, Retryable):
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
        moved = switch(r, decision, cheap, f"{exc.code}:{exc.budget}")
        return await gate.admit(rid, moved, r.caller.label, r.caller.team, r.body)


def _tier_fault(exc: Exception) -> bool | None:
    """Is `exc` the tier's fault whatever the request (True: a connection-level failure, an
    unreadable answer, refused credentials), maybe the request's (False: a 5xx, a timeout), or
    no failure of the tier at all (None: a 429, which is the tier's own back-pressure)?"""
    if isinstance(exc, Retryable):
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
        record_request(r, outcome.decision, 499, "client_disconnected")
        raise
    except Exception as exc:
        status = exc.status if isinstance(exc, ProxyError) else 500
        record_request(r, outcome.decision, status, refusal_reason(exc, outcome))
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
        fallback = other_tier(r, tier) if attempt == 0 else None
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
            decision = switch(r, decision, fallback, f"fallback:{tier}_{skip}")
            continue
        rid = r.rid if attempt == 0 else f"{r.rid}-{attempt}"
        try:
            with tracing.span("budget", tierwise_tier=tier):
                admission = await _admit(r, rid, decision, attempt == 0)
        except ProxyError as exc:  # a budget or the ledger refuses the fallback: report the cause
            if failure is None:
                raise
            outcome.add(r, tier, exc.code, exc.message, None)
            break
        call = Call(r, rid, admission.decision, admission)
        outcome.decision = call.decision
        if attempt == 0 and call.decision.tier != tier:  # a budget moved it to another tier
            fallback = other_tier(r, call.decision.tier)
        capped = _cap_output(r, call.decision.tier)
        headers = (
            decision_headers(call.decision, r.rid, r.state.version_label) | admission.headers()
        )
        if outcome.tried:
            headers["x-tierwise-fallback"] = outcome.header()
        if r.privacy is not None:
            headers["x-tierwise-privacy"] = r.privacy
        if r.rate is not None:
            headers |= r.rate.headers
        try:
            response = await _serve(call, headers)
        except (UpstreamError, UpstreamTimeout, Retryable) as exc:
            if capped:
                r.body.pop("max_tokens", None)
            _name_the_key(r, exc)
            cause = _cause(exc)
            blame.failed(call.decision.tier, _tier_fault(exc), cause, fallback is not None)
            status = exc.reply.status if isinstance(exc, Retryable) else exc.status
            why = "timeout" if isinstance(exc, UpstreamTimeout) else "error"
            if isinstance(exc, Retryable) and fallback is None:
                blame.settle(answered=False)
                outcome.add(r, call.decision.tier, f"http_{status}", cause, None)
                call.finish(status, None, ok=False, reason=outcome.failed())
                return Response(exc.reply.body, exc.reply.status, headers, "application/json")
            call.finish(status, None, ok=False, record=False)
            failure = exc
            outcome.add(r, call.decision.tier, why, cause, fallback)
            if fallback is None:
                break
            decision = switch(r, call.decision, fallback, f"fallback:{call.decision.tier}_{why}")
        except BaseException:  # anything else: free the reservation and the slot, then report
            state.health.neutral(call.decision.tier)
            call.finish(500, None, ok=False, record=False)
            raise
        else:
            blame.settle(answered=True)  # the fallback answered: the first tier's fault
            return response
    blame.settle(answered=False)  # no fallback call was made (or it could not reach its tier)
    assert failure is not None
    if isinstance(failure, Retryable):
        failure = UpstreamError(decision.tier, f"HTTP {failure.reply.status}")
    if len(outcome.tried) > 1 and isinstance(failure, ProxyError):
        tried = ", ".join(f"{tier}:{why}" for tier, why, _ in outcome.tried)
        failure.message += f" (tried: {tried})"
    if r.privacy is not None and isinstance(failure, ProxyError):
        failure.message += f"; privacy rule {r.privacy} keeps it on local tiers"
    raise failure


async def _serve(call: Call, headers: dict[str, str]) -> Response | RelayResponse:
    r = call.routed
    state = r.state
    r.sent_to.append(call.decision.tier)
    tier = state.policy.tiers[call.decision.tier]
    upstream = upstream_for(r, call.decision.tier)
    r.body["model"] = upstream.model_name
    if r.stream:
        return await serve_stream(call, upstream, headers)

    async def once() -> Reply:
        if tier.total_timeout_s is None:
            return await upstream.complete(r.body)
        try:
            async with asyncio.timeout(tier.total_timeout_s):
                return await upstream.complete(r.body)
        except TimeoutError:
            raise UpstreamTimeout(call.decision.tier, tier.total_timeout_s) from None

    began = time.perf_counter()
    if tracing.enabled():
        with tracing.outgoing("upstream", tierwise_tier=call.decision.tier) as calling:
            reply: Reply = await with_retries(call, once)
            calling.set_attribute("http.response.status_code", reply.status)
    else:
        reply = await with_retries(call, once)
    r.upstream_s = (r.upstream_s or 0.0) + time.perf_counter() - began
    state.health.success(call.decision.tier)
    check = escalation_check(call, reply)
    cost = call.finish(reply.status, reply.usage, ok=reply.status == 200)
    if check is not None:
        escalated = await escalate(call, check)
        if escalated is not None:
            return escalated
    if reply.status == 200:
        headers["x-tierwise-cost-usd"] = f"{cost / 1e6:.6f}"
    return Response(reply.body, reply.status, headers, "application/json")
