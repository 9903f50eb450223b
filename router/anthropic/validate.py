"""`validate`: the checks a Messages API body passes before tierwise translates or routes it.

Everything tierwise reads or translates is checked, and a problem is a 400 naming the field by
its path, as Anthropic's API words it (`messages.0.content.1.source.data: must be a string, not
a number`). Checked: `model`, `max_tokens` (a positive integer), `messages` (roles, content as a
string or a list of blocks), each block's required fields and their types (`text`, `image`,
`document`, `tool_use`, `tool_result`, `thinking`, `redacted_thinking`), which role may carry
which block, `system`, `tools`, `tool_choice`, `stop_sequences`, `temperature` / `top_p` /
`top_k`, `metadata`, `stream`. Null means absent for the optional fields. A block type tierwise
cannot translate, or a source it cannot send, is refused (never dropped unseen); every other
field passes through unchecked (native tiers get it, OpenAI-compatible tiers ignore it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NoReturn

from router.errors import BadRequest
from router.server.body import MAX_MESSAGES, MAX_TOKENS, json_kind

__all__ = ["BLOCK_TYPES", "validate", "validate_count_tokens"]

BLOCK_TYPES: Mapping[str, frozenset[str]] = {
    "user": frozenset({"text", "image", "document", "tool_result"}),
    "assistant": frozenset({"text", "tool_use", "thinking", "redacted_thinking"}),
}
"""The content block types each role may carry (what the translation knows how to send)."""

_TOOL_RESULT_BLOCKS = frozenset({"text", "image", "document"})
_TOOL_CHOICES = ("auto", "any", "tool", "none")
_DOCUMENT_MEDIA = {"base64": "application/pdf", "text": "text/plain"}


def _not(value: Any) -> str:
    return f"not {json_kind(value)}"


def _fail(path: str, problem: str) -> NoReturn:
    raise BadRequest(f"{path}: {problem}")


def _object(value: Any, path: str, what: str = "an object") -> Mapping[str, Any]:
    if not isinstance(value, dict):
        _fail(path, f"must be {what}, not {json_kind(value)}")
    return value


def _string(obj: Mapping[str, Any], key: str, path: str, required: bool = True) -> None:
    if key not in obj and required:
        _fail(f"{path}.{key}", "Field required (a string)")
    value = obj.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str):
        _fail(f"{path}.{key}", f"must be a string, not {json_kind(value)}")


def _boolean(obj: Mapping[str, Any], key: str, path: str) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        _fail(f"{path}.{key}" if path else key, f"must be a boolean, not {json_kind(value)}")


def _number(body: Mapping[str, Any], key: str, integer: bool = False) -> None:
    value = body.get(key)
    if value is None:
        return
    what = "an integer" if integer else "a number"
    numeric = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, numeric):
        _fail(key, f"must be {what}, not {json_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        _fail(key, f"must be a finite number, not {value}")


def _text_block(block: Mapping[str, Any], path: str) -> None:
    _string(block, "text", path)


def _image_block(block: Mapping[str, Any], path: str) -> None:
    if "source" not in block:
        _fail(f"{path}.source", "Field required (an object with a 'type')")
    source = _object(block.get("source"), f"{path}.source")
    kind = source.get("type")
    where = f"{path}.source"
    if kind == "base64":
        _string(source, "data", where)
        _string(source, "media_type", where, required=False)
    elif kind == "url":
        _string(source, "url", where)
    else:
        _fail(
            f"{where}.type",
            f"image source type {kind!r} is not supported here (use 'base64' or 'url')",
        )


def _document_block(block: Mapping[str, Any], path: str) -> None:
    if "source" not in block:
        _fail(f"{path}.source", "Field required (an object with a 'type')")
    source = _object(block.get("source"), f"{path}.source")
    where = f"{path}.source"
    kind = source.get("type")
    if isinstance(kind, str) and kind in _DOCUMENT_MEDIA:
        _string(source, "data", where)
        _string(source, "media_type", where, required=False)
        media = source.get("media_type")
        if media is not None and media != _DOCUMENT_MEDIA[kind]:
            _fail(
                f"{where}.media_type",
                f"a {kind!r} document source must be {_DOCUMENT_MEDIA[kind]!r}, not {media!r}",
            )
    elif kind == "content":
        content = source.get("content")
        if isinstance(content, list):
            for j, inner in enumerate(content):
                _block(inner, f"{where}.content.{j}", frozenset({"text", "image"}), "a document")
        elif not isinstance(content, str):
            _fail(f"{where}.content", f"must be a string or a list of blocks, {_not(content)}")
    else:
        _fail(
            f"{where}.type",
            f"document source type {kind!r} is not supported here "
            "(use 'base64' (a PDF), 'text' or 'content')",
        )
    _string(block, "title", path, required=False)
    _string(block, "context", path, required=False)


def _tool_use_block(block: Mapping[str, Any], path: str) -> None:
    _string(block, "id", path)
    _string(block, "name", path)
    if "input" not in block:
        _fail(f"{path}.input", "Field required (an object)")
    _object(block.get("input"), f"{path}.input")


def _tool_result_block(block: Mapping[str, Any], path: str) -> None:
    _string(block, "tool_use_id", path)
    content = block.get("content")
    if isinstance(content, list):
        for j, inner in enumerate(content):
            _block(inner, f"{path}.content.{j}", _TOOL_RESULT_BLOCKS, "a tool_result")
    elif content is not None and not isinstance(content, str):
        _fail(f"{path}.content", f"must be a string or a list of blocks, not {json_kind(content)}")
    _boolean(block, "is_error", path)


def _thinking_block(block: Mapping[str, Any], path: str) -> None:
    _string(block, "thinking", path)
    _string(block, "signature", path)


def _redacted_thinking_block(block: Mapping[str, Any], path: str) -> None:
    _string(block, "data", path)


_CHECKS = {
    "text": _text_block,
    "image": _image_block,
    "document": _document_block,
    "tool_use": _tool_use_block,
    "tool_result": _tool_result_block,
    "thinking": _thinking_block,
    "redacted_thinking": _redacted_thinking_block,
}


def _block(block: Any, path: str, allowed: frozenset[str], where: str) -> None:
    if not isinstance(block, dict):
        _fail(
            path,
            'must be a content block: an object with a \'type\' (e.g. {"type": "text", '
            f'"text": "..."}}), not {json_kind(block)}',
        )
    kind = block.get("type")
    if not isinstance(kind, str):
        _fail(f"{path}.type", f"Field required (a string such as 'text'), not {json_kind(kind)}")
    if kind not in allowed:
        known = "', '".join(sorted(allowed))
        if kind in _CHECKS:
            problem = f"{kind!r} blocks cannot be in {where} (allowed there: '{known}')"
        else:
            problem = f"{kind!r} blocks cannot be routed (allowed in {where}: '{known}')"
        _fail(f"{path}.type", problem)
    _CHECKS[kind](block, path)


def _messages(messages: Any) -> None:
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            _fail(path, f"must be an object with 'role' and 'content', not {json_kind(message)}")
        role = message.get("role")
        if not isinstance(role, str) or role not in BLOCK_TYPES:
            _fail(f"{path}.role", "must be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            _fail(f"{path}.content", f"must be a string or a list of blocks, {_not(content)}")
        if not content and not (role == "assistant" and i == len(messages) - 1):
            _fail(
                f"{path}.content",
                "must not be empty (only a final assistant message, a prefill, may be)",
            )
        where = "a user message" if role == "user" else "an assistant message"
        for j, block in enumerate(content):
            _block(block, f"{path}.content.{j}", BLOCK_TYPES[role], where)


def _system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        _fail("system", f"must be a string or a list of text blocks, not {json_kind(system)}")
    for j, block in enumerate(system):
        _block(block, f"system.{j}", frozenset({"text"}), "system")


def _tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        _fail("tools", f"must be a list of tool definitions, not {json_kind(tools)}")
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        if not isinstance(tool, dict) or "input_schema" not in tool:
            _fail(path, "only custom tools (with input_schema) can be routed")
        _string(tool, "name", path)
        if not tool["name"]:
            _fail(f"{path}.name", "must not be empty")
        _object(tool["input_schema"], f"{path}.input_schema", "an object (a JSON schema)")
        _string(tool, "description", path, required=False)


def _tool_choice(choice: Any) -> None:
    if choice is None:
        return
    choice = _object(choice, "tool_choice", 'an object (e.g. {"type": "auto"})')
    kind = choice.get("type")
    if kind not in _TOOL_CHOICES:
        known = "', '".join(_TOOL_CHOICES)
        _fail("tool_choice.type", f"unknown value {kind!r} (one of '{known}')")
    if kind == "tool":
        _string(choice, "name", "tool_choice")
    _boolean(choice, "disable_parallel_tool_use", "tool_choice")


def _stop_sequences(stops: Any) -> None:
    if stops is None:
        return
    if not isinstance(stops, list):
        _fail("stop_sequences", f"must be a list of strings, not {json_kind(stops)}")
    for j, stop in enumerate(stops):
        if not isinstance(stop, str):
            _fail(f"stop_sequences.{j}", f"must be a string, not {json_kind(stop)}")


def _metadata(metadata: Any) -> None:
    if metadata is None:
        return
    _string(_object(metadata, "metadata"), "user_id", "metadata", required=False)


def _shape(body: Mapping[str, Any]) -> None:
    """The checks shared by both endpoints, after `model` and `messages` are present."""
    _messages(body["messages"])
    _system(body.get("system"))
    _tools(body.get("tools"))
    _tool_choice(body.get("tool_choice"))


def _required(body: Any, messages_may_be_empty: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest('model: Field required (a string, e.g. "auto")')
    messages = body.get("messages")
    if not isinstance(messages, list) or not (messages or messages_may_be_empty):
        raise BadRequest("messages: Field required (a non-empty list)")
    if len(messages) > MAX_MESSAGES:
        raise BadRequest(f"messages: {len(messages)} entries; at most {MAX_MESSAGES}")
    return body


def validate(body: Any) -> dict[str, Any]:
    """`body`, a `POST /v1/messages` request, once it passes every check (see the module
    docstring); a `BadRequest` naming the first field that does not."""
    checked = _required(body, messages_may_be_empty=False)
    max_tokens = checked.get("max_tokens")
    if max_tokens is None:
        raise BadRequest("max_tokens: Field required (a positive integer)")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        _fail("max_tokens", f"must be a positive integer, not {json_kind(max_tokens)}")
    if max_tokens < 1:
        _fail("max_tokens", f"must be a positive integer, not {max_tokens}")
    if max_tokens > MAX_TOKENS:  # a 400, not a worst case the budgets would try to price
        _fail("max_tokens", f"must be at most {MAX_TOKENS}, not {max_tokens}")
    _shape(checked)
    _stop_sequences(checked.get("stop_sequences"))
    for key in ("temperature", "top_p"):
        _number(checked, key)
    _number(checked, "top_k", integer=True)
    _metadata(checked.get("metadata"))
    _boolean(checked, "stream", "")
    return checked


def validate_count_tokens(body: Any) -> dict[str, Any]:
    """`body`, a `POST /v1/messages/count_tokens` request (no `max_tokens`; `messages` may be
    empty), once its messages, system, tools and tool_choice pass `validate`'s checks."""
    checked = _required(body, messages_may_be_empty=True)
    _shape(checked)
    return checked
