"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API.

The same pipeline as `/v1/chat/completions` in another wire format: auth (`x-api-key` or a
bearer token; `anthropic-version` is accepted and not needed) -> validate -> translate to an
OpenAI chat body (what scoring, decisions, budgets and the request log work on) -> `route` ->
`dispatch` with an `AnthropicWire`, which passes the request through untouched to tiers that
speak the Messages API natively and translates for the others. Errors answer in Anthropic's
shape with the same statuses as the OpenAI endpoint.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from classifiers import scoring_text
from policies import UnknownModel
from router.anthropic.tokens import estimate_input_tokens
from router.anthropic.translate import to_openai, validate
from router.anthropic.validate import validate_count_tokens
from router.anthropic.wire import AnthropicWire
from router.errors import ProxyError
from router.server.body import parse_json, read_body
from router.server.dispatch import decision_headers, dispatch, route
from router.server.relay import RelayResponse
from router.server.responses import anthropic_error_response
from router.upstreams.anthropic import AnthropicUpstream

if TYPE_CHECKING:
    from router.server.state import ProxyState

__all__ = ["MessagesApi"]

log = logging.getLogger("tierwise")


class MessagesApi:
    """The Messages endpoints, holding the native upstreams of the tiers that speak them."""

    def __init__(self, natives: Mapping[str, AnthropicUpstream]) -> None:
        self.natives = dict(natives)

    async def create(self, request: Request) -> Response | RelayResponse:
        """`POST /v1/messages`."""
        state: ProxyState = request.app.state.proxy
        started, arrived = time.perf_counter(), time.time()
        rid = os.urandom(16).hex()  # as unique as uuid4, 4x cheaper
        headers = {"x-tierwise-request-id": rid}
        try:
            caller = state.keys.check(request.headers)
            body = validate(parse_json(await read_body(request, state.settings)))
            chat = to_openai(body)
            text = scoring_text(body["messages"], body.get("system"))
            wire = AnthropicWire(body, self.natives, estimate_input_tokens(body))
            routed = await route(
                state, rid, arrived, started, caller, request.headers, chat, text, wire
            )
            headers = decision_headers(routed.decision, rid)
            return await dispatch(routed)
        except Exception as exc:
            if not isinstance(exc, ProxyError | UnknownModel):
                log.exception("request %s failed", rid)
            return anthropic_error_response(exc, headers)

    async def count_tokens(self, request: Request) -> Response:
        """`POST /v1/messages/count_tokens`: `{"input_tokens": N}` from
        `estimate_input_tokens` (about 4 UTF-8 bytes of text per token, plus per-message and
        per-image allowances; no provider is called, so nothing is billed)."""
        state: ProxyState = request.app.state.proxy
        try:
            state.keys.check(request.headers)
            raw = await read_body(request, state.settings)
            body = validate_count_tokens(parse_json(raw))
            return JSONResponse({"input_tokens": estimate_input_tokens(body)})
        except Exception as exc:
            if not isinstance(exc, ProxyError):
                log.exception("count_tokens failed")
            return anthropic_error_response(exc)

    async def aclose(self) -> None:
        for upstream in self.natives.values():
            await upstream.aclose()
