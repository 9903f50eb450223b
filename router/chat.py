"""`POST /v1/chat/completions`: the request path from bytes in to bytes out.

auth -> read/validate -> scoring text -> difficulty -> decide -> upstream -> respond with the
decision headers. All errors go through `router.errors.error_response`.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from classifiers import scoring_text
from policies import Decision, UnknownModel, decide
from router.errors import ProxyError, error_response
from router.relay import RelayResponse
from router.requests import parse_chat_request, read_body
from router.upstream import Reply

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


async def chat_completions(request: Request) -> Response | RelayResponse:
    state: ProxyState = request.app.state.proxy
    request_id = uuid.uuid4().hex
    headers = {"x-tierwise-request-id": request_id}
    try:
        state.keys.check(request.headers)
        body = parse_chat_request(await read_body(request, state.settings.max_body_bytes))
        difficulty = state.scorer.difficulty(scoring_text(body["messages"]))
        decision = decide(state.policy, body["model"], difficulty, state.threshold)
        headers = decision_headers(decision, request_id)
        upstream = state.upstreams[decision.tier]
        body["model"] = upstream.model_name
        if body.get("stream"):
            opened = await upstream.stream(body)
            if isinstance(opened, Reply):
                return Response(opened.body, opened.status, headers, "application/json")
            return RelayResponse(opened, headers | _SSE_HEADERS)
        reply = await upstream.complete(body)
        return Response(reply.body, reply.status, headers, "application/json")
    except Exception as exc:
        if not isinstance(exc, ProxyError | UnknownModel):
            log.exception("request %s failed", request_id)
        return error_response(exc, headers)
