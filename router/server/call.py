"""One attempt on one tier (`Call`): settled or released, and logged, exactly once; the
request-log record of a request; retries of 429 / 5xx answers with jittered backoff."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policies import Decision
from policies.privacy import request_text
from router import tracing
from router.errors import UpstreamError
from router.gates.budget import Admission
from router.ledger import RequestRecord
from router.ledger.audit import AuditLog
from router.upstreams.base import Reply, Usage

if TYPE_CHECKING:
    from router.server.routing import Routed

__all__ = ["Call", "Retryable", "record_request", "with_retries"]

log = logging.getLogger("tierwise")
decisions = logging.getLogger("tierwise.decisions")

_DECISION_FIELDS = (
    "request_id",
    "caller",
    "team",
    "tier",
    "model",
    "difficulty",
    "threshold",
    "reason",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "status",
    "stream",
)


def _audit_egress(r: Routed, record: RequestRecord) -> None:
    """One audit entry per non-local tier the request's text was sent to (never the text)."""
    tiers = r.state.policy.tiers
    out = [t for t in dict.fromkeys(r.sent_to) if not tiers[t].local]
    r.sent_to = []
    if not out:
        return
    size = len(request_text(r.body).encode())
    passed = list(r.state.policy.privacy.keep_local.detectors)
    audit = r.state.store.audit
    for tier in out:
        data = {
            "request_id": record.request_id,
            "caller": record.caller,
            "team": record.team,
            "tier": tier,
            "model": tiers[tier].model,
            "bytes": size,
            "status": record.status,
            "detectors_passed": passed,
        }
        r.state.background(_append(audit, data, record.time))


async def _append(audit: AuditLog, data: dict[str, Any], at: float) -> None:
    try:
        await audit.append("egress", data, at)
    except Exception as exc:  # the request is answered; say loudly that its trace is missing
        log.error("audit entry for request %s not written: %s", data["request_id"], exc)


def _decision_line(record: RequestRecord) -> None:
    """`--log-format json`: one line per request with its decision (the prompt only where
    the policy keeps prompts, `logging.prompts`)."""
    fields = {name: getattr(record, name) for name in _DECISION_FIELDS}
    fields["cost_usd"] = record.cost_micros / 1e6
    fields["latency_ms"] = round(record.latency_ms, 3)
    if record.prompt is not None:
        fields["prompt"] = record.prompt
    decisions.info("request %s", record.request_id, extra={"decision": fields})


def record_request(
    r: Routed,
    d: Decision,
    status: int,
    reason: str,
    usage: Usage | None = None,
    cost: int = 0,
    equivalent: int = 0,
    request_id: str | None = None,
) -> None:
    """Append the request's record to the request log (never blocks, never raises) and count
    it in the metrics."""
    record = RequestRecord(
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
    r.state.store.requests.append(record)
    if r.sent_to and r.state.policy.audit.egress:
        _audit_egress(r, record)
    if r.rate is not None and r.state.rates is not None:  # the first record of the request
        rate, r.rate = r.rate, None
        used = record.prompt_tokens + record.completion_tokens
        r.state.background(r.state.rates.finish(rate, used))
    if r.state.settings.log_format == "json":
        _decision_line(record)
    try:
        r.state.proxy.metrics.request(record, r.upstream_s, r.ttft_s, r.score_s)
    except Exception:  # metrics are never worth a request
        log.exception("metrics for request %s", record.request_id)


@dataclass(slots=True)
class Call:
    """One attempt on one tier: what `finish` needs to settle and log it."""

    routed: Routed
    rid: str
    decision: Decision
    admission: Admission
    finished: bool = False
    log_id: str | None = None  # its own request-log id (an escalation); None: the request's
    trace: Any = None  # the trace context it started in (tracing on): its settlement's parent

    def __post_init__(self) -> None:
        if tracing.enabled():
            self.trace = tracing.current()
        self.routed.state.health.inflight[self.decision.tier] += 1
        self.routed.state.proxy.metrics.calls(self.decision.tier, 1)

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
        state.proxy.metrics.calls(d.tier, -1)
        cost = gate.cost(self.admission, usage) if ok else 0
        equivalent = gate.frontier_equivalent(usage) if ok else 0
        work = (
            gate.settle(self.rid, self.admission, cost, equivalent)
            if ok
            else gate.release(self.rid, self.admission)
        )
        if tracing.enabled():
            name = "settle" if ok else "release"
            work = tracing.traced(name, work, self.trace, tierwise_tier=d.tier)
        state.background(work)
        state.alerts.observed(d.tier, d.reason, d.difficulty, status)
        if record:
            record_request(r, d, status, reason or d.reason, usage, cost, equivalent, self.log_id)
        return cost


class Retryable(Exception):
    """A 429 the tier answered: retried, then treated as a failure when a fallback exists."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


async def with_retries(call: Call, attempt: Any) -> Any:
    """Run `attempt()`; on 429/5xx retry up to the tier's `retries` with jittered backoff."""
    retries = call.routed.state.policy.tiers[call.decision.tier].retries
    for k in range(retries + 1):
        try:
            result = await attempt()
            if isinstance(result, Reply) and result.status == 429:
                raise Retryable(result)
            return result
        except (UpstreamError, Retryable):
            if k == retries:
                raise
        await asyncio.sleep(min(0.1 * 2**k, 2.0) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")
