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
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from classifiers import scoring_text
from router.anthropic.tokens import estimate_input_tokens
from router.anthropic.translate import to_openai, validate
from router.anthropic.validate import validate_count_tokens
from router.anthropic.wire import AnthropicWire
from router.errors import ProxyError
from router.server.body import parse_json, read_body
from router.server.handle import handle_routed
from router.server.relay import RelayResponse
from router.server.responses import anthropic_error_response

if TYPE_CHECKING:
    from router.server.state import Runtime

__all__ = ["MessagesApi"]

log = logging.getLogger("tierwise")


def _parse(raw: bytes, state: Runtime) -> tuple[dict[str, Any], str, AnthropicWire]:
    body = validate(parse_json(raw))
    chat = to_openai(body)
    text = scoring_text(body["messages"], body.get("system"))
    return chat, text, AnthropicWire(body, state.natives, estimate_input_tokens(body))


class MessagesApi:
    """The Messages endpoints (the native upstreams of the tiers that speak the Messages API
    are the served policy's: `Runtime.natives`)."""

    async def create(self, request: Request) -> Response | RelayResponse:
        """`POST /v1/messages`."""
        return await handle_routed(request, _parse, anthropic_error_response)

    async def count_tokens(self, request: Request) -> Response:
        """`POST /v1/messages/count_tokens`: `{"input_tokens": N}` from
        `estimate_input_tokens` (about 4 UTF-8 bytes of text per token, plus per-message and
        per-image allowances; no provider is called, so nothing is billed)."""
        state: Runtime = request.app.state.proxy.current
        try:
            await state.keys.check_async(request.headers)
            raw = await read_body(request, state.settings)
            body = validate_count_tokens(parse_json(raw))
            return JSONResponse({"input_tokens": estimate_input_tokens(body)})
        except Exception as exc:
            if not isinstance(exc, ProxyError):
                log.exception("count_tokens failed")
            return anthropic_error_response(exc)
