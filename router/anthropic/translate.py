"""Pure translation between Anthropic's Messages API and OpenAI's chat completions.

`to_openai(body)` turns a validated Messages request into a chat-completions body;
`to_anthropic(payload, model)` turns a chat-completions answer into a Messages answer.
No I/O here.

What cannot map exactly: OpenAI does not say which stop sequence ended a completion, so a stop
always reads `end_turn` (`stop_sequence: null`); `thinking` blocks and server tools are not sent to
OpenAI-compatible tiers (server tools are refused with a 400).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from router.errors import BadRequest

__all__ = [
    "STOP_REASONS",
    "answer_message",
    "message_id",
    "to_anthropic",
    "to_openai",
    "usage_block",
    "validate",
]

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def validate(body: Any) -> dict[str, Any]:
    """Check the fields the Messages API requires; 400 naming the field otherwise."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest('model: Field required (a string, e.g. "auto")')
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest("max_tokens: Field required (a positive integer)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: Field required (a non-empty list)")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: must be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise BadRequest(f"messages.{i}.content: must be a string or a list of blocks")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise BadRequest("stream: must be a boolean")
    return body


# -- request: Anthropic -> OpenAI -----------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _image(block: Mapping[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise BadRequest(f"image source type {source.get('type')!r} is not supported here")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: Mapping[str, Any]) -> dict[str, Any]:
    text = _text_of(block.get("content"))
    if block.get("is_error"):
        text = f"[tool error] {text}"
    return {"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": text}


def _user(content: list[Any]) -> list[dict[str, Any]]:
    """Tool results first (as `tool` messages, which must follow the assistant's calls), then
    the rest of the turn as one user message."""
    out = [_tool_result(b) for b in content if b.get("type") == "tool_result"]
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image(block))
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _assistant(content: list[Any]) -> dict[str, Any]:
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in content
        if b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    elif not text:
        message["content"] = ""
    return message


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": _text_of(system)})
    for message in body["messages"]:
        role, content = message["role"], message["content"]
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif role == "user":
            out.extend(_user([b for b in content if isinstance(b, dict)]))
        else:
            out.append(_assistant([b for b in content if isinstance(b, dict)]))
    return out


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or "input_schema" not in tool:
            raise BadRequest(f"tools.{i}: only custom tools (with input_schema) can be routed")
        function = {"name": tool.get("name", ""), "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Mapping[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    if kind not in _TOOL_CHOICE:
        raise BadRequest(f"tool_choice.type: unknown value {kind!r}")
    return _TOOL_CHOICE[kind]


def to_openai(body: Mapping[str, Any]) -> dict[str, Any]:
    """A chat-completions body asking for the same thing as the Messages request `body`."""
    out: dict[str, Any] = {
        "model": body["model"],
        "messages": _messages(body),
        "max_tokens": body["max_tokens"],
    }
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = str(user)
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = _tool_choice(choice)
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    if body.get("stream"):
        out["stream"] = True
    return out


# -- response: OpenAI -> Anthropic ----------------------------------------------------------------


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except ValueError:
        return {"_raw_arguments": raw}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def usage_block(usage: Any) -> dict[str, int]:
    """Anthropic usage from an OpenAI usage object (missing counts read 0)."""
    usage = usage if isinstance(usage, dict) else {}
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }


def to_anthropic(payload: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The Messages answer for a chat-completions answer; `model` is the name the client asked
    for (tierwise's routing names, not the tier's model, which the headers carry)."""
    choices = payload.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name", ""),
                "input": _arguments(function.get("arguments")),
            }
        )
    finish = choice.get("finish_reason")
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(finish, "end_turn") if finish else "end_turn",
        "stop_sequence": None,
        "usage": usage_block(payload.get("usage")),
    }


def answer_message(anthropic: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI-style `{content, tool_calls}` view of a Messages answer (escalation checks)."""
    blocks = anthropic.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [b for b in blocks if b.get("type") == "tool_use"]
    return {"role": "assistant", "content": text, "tool_calls": calls}
