"""`POST /v1/chat/completions`: the request path from bytes in to bytes out.

auth -> read/validate -> scoring text -> difficulty -> decide -> budgets (pace) -> dispatch
(reserve, call the tier, fall back or escalate; `router.server.dispatch`) -> respond with the
decision headers -> settle the real cost and log the request (after the response, in the
background). All errors go through `router.errors.error_response`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from classifiers import scoring_text
from policies import UnknownModel
from router.errors import ProxyError
from router.server.body import parse_chat_request, read_body
from router.server.dispatch import decision_headers, dispatch, route
from router.server.relay import RelayResponse
from router.server.responses import error_response

if TYPE_CHECKING:
    from router.server.state import ProxyState

__all__ = ["chat_completions"]

log = logging.getLogger("tierwise")


async def chat_completions(request: Request) -> Response | RelayResponse:
    state: ProxyState = request.app.state.proxy
    started, arrived = time.perf_counter(), time.time()
    rid = os.urandom(16).hex()  # as unique as uuid4, 4x cheaper
    headers = {"x-tierwise-request-id": rid}
    try:
        caller = state.keys.check(request.headers)
        body = parse_chat_request(await read_body(request, state.settings))
        text = scoring_text(body["messages"])
        routed = await route(state, rid, arrived, started, caller, request.headers, body, text)
        headers = decision_headers(routed.decision, rid)
        return await dispatch(routed)
    except Exception as exc:
        if not isinstance(exc, ProxyError | UnknownModel):
            log.exception("request %s failed", rid)
        return error_response(exc, headers)
