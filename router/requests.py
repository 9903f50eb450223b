"""Reading and validating an incoming chat request body (size limit, JSON, required fields)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from router.errors import BadRequest, BodyTooLarge

__all__ = ["parse_chat_request", "parse_json", "read_body"]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes (413) without buffering past it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
        if size > limit:
            raise BodyTooLarge(limit)
        return await request.body()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """The decoded JSON of a request body; 400 when it is empty or not JSON."""
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def parse_chat_request(raw: bytes) -> dict[str, Any]:
    """Parse an OpenAI chat-completions body; 400 with the offending field for bad input."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("missing required field 'model' (a string, e.g. \"auto\")")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("missing required field 'messages' (a non-empty list)")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object")
        if not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{i}].role is required (a string)")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise BadRequest("'stream' must be a boolean")
    return body
