"""`routing.escalate`: a non-streamed cheap answer that fails a cheap check (malformed, empty,
a refusal, invalid JSON where JSON was asked for) is retried once on the frontier."""

from __future__ import annotations

import json
import logging
import re

from starlette.responses import Response

from router.errors import UpstreamError, UpstreamTimeout
from router.server.call import Call
from router.server.routing import decision_headers, other_tier, switch, upstream_for
from router.upstreams.base import Reply

__all__ = ["escalate", "escalation_check"]

log = logging.getLogger("tierwise")

_REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|i cannot|i can'?t|i'?m unable|i am unable|as an ai)", re.I
)


def escalation_check(call: Call, reply: Reply) -> str | None:
    """Why a cheap answer should go to the frontier (`routing.escalate`), or None."""
    r = call.routed
    routing = r.state.policy.routing
    if not routing.escalate or call.decision.tier != routing.cheap_tier or reply.status != 200:
        return None
    if other_tier(r, call.decision.tier) is None:
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


async def escalate(call: Call, check: str) -> Response | None:
    """Retry once on the frontier; None (keep the cheap answer) when that is not possible."""
    r = call.routed
    frontier = r.state.policy.routing.frontier_tier
    decision = switch(r, call.decision, frontier, f"escalated:{check}")
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
    headers = decision_headers(second.decision, r.rid, r.state.version_label) | admission.headers()
    headers["x-tierwise-escalated-from"] = call.decision.tier
    upstream = upstream_for(r, frontier)
    r.sent_to.append(frontier)
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
