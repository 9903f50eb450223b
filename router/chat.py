"""`POST /v1/chat/completions`: the request path from bytes in to bytes out.

auth -> read/validate -> scoring text -> difficulty -> decide -> budgets (pace, reserve) ->
upstream -> respond with the decision headers -> settle the real cost and log the request
(after the response, in the background). All errors go through `router.errors.error_response`.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from classifiers import scoring_text
from policies import Decision, UnknownModel, decide
from router.auth import Caller
from router.budgeting import Admission
from router.errors import ProxyError, error_response
from router.ledger import RequestRecord
from router.relay import RelayResponse
from router.requests import parse_chat_request, read_body
from router.upstream import Reply, Usage

if TYPE_CHECKING:
    from router.state import ProxyState

__all__ = ["chat_completions", "decision_headers"]

log = logging.getLogger("tierwise")

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def decision_headers(decision: Decision, request_id: str) -> dict[str, str]:
    return {
        "x-tierwise-tier": decision.tier,
        "x-tierwise-model": decision.model,
        "x-tierwise-difficulty": f"{decision.difficulty:.4f}",
        "x-tierwise-threshold": f"{decision.threshold:.4f}",
        "x-tierwise-reason": decision.reason,
        "x-tierwise-request-id": request_id,
    }


@dataclass(slots=True)
class _Call:
    """What `_finish` needs to settle and log one request."""

    state: ProxyState
    rid: str
    arrived: float
    started: float
    caller: Caller
    decision: Decision
    admission: Admission
    stream: bool
    prompt: str | None

    def finish(self, status: int, usage: Usage | None, ok: bool) -> int:
        """Settle (or release) in the background and log the request; returns the cost."""
        gate = self.state.gate
        cost = gate.cost(self.admission, usage) if ok else 0
        equivalent = gate.frontier_equivalent(usage) if ok else 0
        if ok:
            self.state.background(gate.settle(self.rid, self.admission, cost, equivalent))
        else:
            self.state.background(gate.release(self.rid, self.admission))
        d = self.decision
        self.state.alerts.observed(d.tier, d.reason, d.difficulty, status)
        self.state.store.requests.append(
            RequestRecord(
                request_id=self.rid,
                time=self.arrived,
                caller=self.caller.label,
                team=self.caller.team,
                tier=d.tier,
                model=d.model,
                difficulty=d.difficulty,
                threshold=d.threshold,
                reason=d.reason,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                cost_micros=cost,
                counterfactual_micros=equivalent,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                status=status,
                stream=self.stream,
                prompt=self.prompt,
            )
        )
        return cost


async def chat_completions(request: Request) -> Response | RelayResponse:
    state: ProxyState = request.app.state.proxy
    started, arrived = time.perf_counter(), time.time()
    rid = uuid.uuid4().hex
    headers = {"x-tierwise-request-id": rid}
    call: _Call | None = None
    try:
        caller = state.keys.check(request.headers)
        body = parse_chat_request(await read_body(request, state.settings.max_body_bytes))
        text = scoring_text(body["messages"])
        difficulty = state.scorer.difficulty(text)
        decision = decide(state.policy, body["model"], difficulty, state.threshold)
        decision = await state.gate.adjust(decision, caller.label, caller.team)
        admission = await state.gate.admit(rid, decision, caller.label, caller.team, body)
        decision = admission.decision
        headers = decision_headers(decision, rid)
        stream = bool(body.get("stream"))
        prompt = text if state.policy.logging.prompts else None
        call = _Call(state, rid, arrived, started, caller, decision, admission, stream, prompt)
        upstream = state.upstreams[decision.tier]
        body["model"] = upstream.model_name
        if stream:
            return await _stream(call, upstream, body, headers)
        reply = await upstream.complete(body)
        cost = call.finish(reply.status, reply.usage, ok=reply.status == 200)
        if reply.status == 200:
            headers["x-tierwise-cost-usd"] = f"{cost / 1e6:.6f}"
        return Response(reply.body, reply.status, headers, "application/json")
    except Exception as exc:
        if not isinstance(exc, ProxyError | UnknownModel):
            log.exception("request %s failed", rid)
        response = error_response(exc, headers)
        if call is not None:
            call.finish(response.status_code, None, ok=False)
        return response


async def _stream(
    call: _Call, upstream: Any, body: dict[str, Any], headers: dict[str, str]
) -> Response | RelayResponse:
    options = body.get("stream_options")
    options = options if isinstance(options, dict) else {}
    wants_usage = bool(options.get("include_usage"))
    body["stream_options"] = {**options, "include_usage": True}  # bill from real counts
    opened = await upstream.stream(body, strip_usage=not wants_usage)
    if isinstance(opened, Reply):
        call.finish(opened.status, None, ok=False)
        return Response(opened.body, opened.status, headers, "application/json")

    def done(completed: bool) -> None:
        # a client that hangs up still pays for what the upstream produced (the reservation,
        # when the usage never arrived)
        call.finish(200 if completed else 499, opened.usage, ok=True)

    return RelayResponse(opened, headers | _SSE_HEADERS, on_done=done)
