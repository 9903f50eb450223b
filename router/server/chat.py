"""`POST /v1/chat/completions`: the request path from bytes in to bytes out.

auth -> read/validate -> scoring text -> difficulty -> decide -> budgets (pace) -> dispatch
(reserve, call the tier, fall back or escalate; `router.server.dispatch`) -> respond with the
decision headers -> settle the real cost and log the request (after the response, in the
background). The prologue and error handling shared with `/v1/messages` are in
`router.server.handle`; errors answer through `router.server.responses.error_response`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from classifiers import scoring_text
from router.server.body import parse_chat_request
from router.server.handle import handle_routed
from router.server.relay import RelayResponse
from router.server.responses import error_response

__all__ = ["chat_completions"]


def _parse(raw: bytes, state: object) -> tuple[dict[str, Any], str, None]:
    body = parse_chat_request(raw)
    return body, scoring_text(body["messages"]), None


async def chat_completions(request: Request) -> Response | RelayResponse:
    return await handle_routed(request, _parse, error_response)
