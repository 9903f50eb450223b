"""`POST /v1/chat/completions`: the request path from bytes in to bytes out.

auth -> read/validate -> scoring text -> difficulty -> decide -> budgets (pace) -> dispatch
(reserve, call the tier, fall back or escalate; `router.dispatch`) -> respond with the decision
headers -> settle the real cost and log the request (after the response, in the background).
All errors go through `router.errors.error_response`.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from classifiers import scoring_text
from policies import UnknownModel, decide
from router.dispatch import Routed, decision_headers, dispatch
from router.errors import ProxyError, error_response
from router.relay import RelayResponse
from router.requests import parse_chat_request, read_body

if TYPE_CHECKING:
    from router.state import ProxyState

__all__ = ["chat_completions", "decision_headers"]

log = logging.getLogger("tierwise")

_TRUE = ("1", "true", "yes")


async def chat_completions(request: Request) -> Response | RelayResponse:
    state: ProxyState = request.app.state.proxy
    started, arrived = time.perf_counter(), time.time()
    rid = uuid.uuid4().hex
    headers = {"x-tierwise-request-id": rid}
    try:
        caller = state.keys.check(request.headers)
        body = parse_chat_request(await read_body(request, state.settings.max_body_bytes))
        text = scoring_text(body["messages"])
        difficulty = state.scorer.difficulty(text)
        local_only = request.headers.get("x-tierwise-local-only", "").lower() in _TRUE
        decision = decide(state.policy, body["model"], difficulty, state.threshold)
        if local_only and not state.policy.tiers[decision.tier].local:
            decision = state.gate.local_only(decision)
        decision = await state.gate.adjust(decision, caller.label, caller.team)
        headers = decision_headers(decision, rid)
        prompt = text if state.policy.logging.prompts else None
        stream = bool(body.get("stream"))
        routed = Routed(
            state, rid, arrived, started, caller, body, decision, stream, prompt, local_only
        )
        return await dispatch(routed)
    except Exception as exc:
        if not isinstance(exc, ProxyError | UnknownModel):
            log.exception("request %s failed", rid)
        return error_response(exc, headers)
