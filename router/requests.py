"""Reading and validating an incoming request body: size limit, JSON nesting limit, JSON, and the
chat-completions fields the proxy itself relies on (everything else passes through unchecked)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from starlette.requests import Request

from router.errors import BadRequest, BodyTooLarge

__all__ = ["MAX_JSON_DEPTH", "json_depth", "parse_chat_request", "parse_json", "read_body"]

MAX_JSON_DEPTH = 128
"""The deepest nesting of arrays and objects a request body may have (as serde_json's default);
real chat bodies, tool schemas included, stay far below it."""


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


_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone, a string holds no quote
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _b in b"[{":
    _STEP[_b] = 1
for _b in b"]}":
    _STEP[_b] = -1


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in the UTF-8 JSON text `raw`, found without
    parsing (so without recursing): escapes, then strings, are cut out and the brackets left
    are counted. Linear time, all of it in C; exact for valid JSON."""
    text = _ESCAPE.sub(b"", raw) if b"\\" in raw else raw
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _too_deep(raw: bytes, limit: int) -> bool:
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the common case: cannot be deeper
        return False
    encoding = json.detect_encoding(raw)
    if encoding.startswith(("utf-16", "utf-32")):
        raw = raw.decode(encoding).encode()
    return json_depth(raw) > limit


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The decoded JSON of a request body; 400 when it is empty, not JSON, or nested deeper
    than `max_depth` (checked before the parser, which recurses, sees it)."""
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object")
    too_deep = BadRequest(
        f"request body is nested too deeply: more than {max_depth} levels of arrays and objects"
    )
    try:
        if _too_deep(raw, max_depth):
            raise too_deep
        return json.loads(raw)
    except RecursionError:  # not reachable through the check above; never a 500 regardless
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def _kind(value: Any) -> str:
    """How a wrong value is named in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


# roles whose messages must carry content (an assistant turn may be tool calls alone)
_CONTENT_REQUIRED = frozenset({"system", "developer", "user", "tool"})


def _check_content(where: str, role: str, message: Mapping[str, Any]) -> None:
    content = message.get("content")
    if content is None:
        if role in _CONTENT_REQUIRED:
            raise BadRequest(
                f"{where}.content is required for role {role!r} "
                "(a string or a list of content parts)"
            )
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(
            f"{where}.content must be a string or a list of content parts, not {_kind(content)}"
        )
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            got = _kind(part) if not isinstance(part, dict) else "an object without a 'type'"
            raise BadRequest(
                f"{where}.content[{j}] must be a content part: an object with a 'type' "
                f'(e.g. {{"type": "text", "text": "..."}}), not {got}'
            )
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise BadRequest(f"{where}.content[{j}].text must be a string")


def _check_positive_int(body: Mapping[str, Any], field: str) -> None:
    value = body.get(field)
    if value is None:  # absent or null: the default
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{field}' must be a positive integer, not {_kind(value)}")
    if value < 1:
        raise BadRequest(f"'{field}' must be a positive integer, not {value}")


def parse_chat_request(raw: bytes) -> dict[str, Any]:
    """Parse an OpenAI chat-completions body; 400 naming the offending field for bad input.

    Checked: what the proxy itself reads (model, messages and their content shapes,
    max_tokens / max_completion_tokens, n, stream, stream_options, response_format); null
    means "absent" for the optional ones, as in OpenAI's API. The rest passes through."""
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
            raise BadRequest(f"messages[{i}] must be an object, not {_kind(message)}")
        role = message.get("role")
        if not isinstance(role, str):
            raise BadRequest(f"messages[{i}].role is required (a string)")
        _check_content(f"messages[{i}]", role, message)
    for field in ("max_tokens", "max_completion_tokens", "n"):
        _check_positive_int(body, field)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(f"'stream' must be a boolean, not {_kind(stream)}")
    for field in ("stream_options", "response_format"):
        value = body.get(field)
        if value is not None and not isinstance(value, dict):
            raise BadRequest(f"'{field}' must be an object, not {_kind(value)}")
    return body
