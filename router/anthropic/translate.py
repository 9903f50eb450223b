"""Pure translation between Anthropic's Messages API and OpenAI's chat completions.

`to_openai(body)` turns a Messages request that passed `validate` (`router.anthropic.validate`,
re-exported here) into a chat-completions body; `to_anthropic(payload, model)` turns a
chat-completions answer into a Messages answer. No I/O here.

What cannot map exactly: OpenAI does not say which stop sequence ended a completion, so a stop
always reads `end_turn` (`stop_sequence: null`); `thinking` / `redacted_thinking` blocks are not
sent to OpenAI-compatible tiers; a `tool` message carries text only, so the images and documents
of a `tool_result` follow in the user message after it. What cannot map at all (server tools,
`file` sources, `url` documents, other block types) `validate` refuses with a 400.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from router.anthropic.validate import validate

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
    source = block["source"]  # validated: a base64 or url source
    if source["type"] == "base64":
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    else:
        url = source["url"]
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A document as chat parts: its title and context, then its text (a `text` or `content`
    source) or the PDF as a `file` part with a `data:` URL (a `base64` source)."""
    source = block["source"]  # validated: base64 (PDF), text or content
    heading = [str(block[key]) for key in ("title", "context") if block.get(key)]
    if source["type"] == "base64":
        pdf = {
            "filename": block.get("title") or "document.pdf",
            "file_data": f"data:application/pdf;base64,{source['data']}",
        }
        parts = [{"type": "text", "text": "\n\n".join(heading)}] if heading else []
        return [*parts, {"type": "file", "file": pdf}]
    if source["type"] == "text":
        return [{"type": "text", "text": "\n\n".join([*heading, source["data"]])}]
    content = source["content"]
    if isinstance(content, str):
        return [{"type": "text", "text": "\n\n".join([*heading, content])}]
    parts = [{"type": "text", "text": "\n\n".join(heading)}] if heading else []
    return [*parts, *_parts(content)]


def _parts(blocks: list[Any]) -> list[dict[str, Any]]:
    """Chat content parts for text, image and document blocks (others are not parts)."""
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image(block))
        elif kind == "document":
            parts.extend(_document(block))
    return parts


_ATTACHED = "[the non-text part of this result follows in the next user message]"


def _tool_result(block: Mapping[str, Any]) -> dict[str, Any]:
    content = block.get("content")
    text = _text_of(content)
    if not text and isinstance(content, list) and _parts(content):
        text = _ATTACHED
    if block.get("is_error"):
        text = f"[tool error] {text}"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _user(content: list[Any]) -> list[dict[str, Any]]:
    """Tool results first (as `tool` messages, which must follow the assistant's calls), then
    the rest of the turn as one user message: the images and documents inside tool results
    (a `tool` message carries text only), then the turn's own text, images and documents."""
    results = [b for b in content if b["type"] == "tool_result"]
    out = [_tool_result(b) for b in results]
    parts: list[dict[str, Any]] = []
    for result in results:
        inner = result.get("content")
        if isinstance(inner, list):
            parts.extend(p for p in _parts(inner) if p["type"] != "text")
    parts.extend(_parts(content))
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
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
        }
        for b in content
        if b["type"] == "tool_use"
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
            out.extend(_user(content))
        else:
            out.append(_assistant(content))
    return out


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:  # validated: custom tools, each with a name and an input_schema
        function = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Mapping[str, Any]) -> Any:
    kind = choice["type"]  # validated: auto, any, tool (with a name) or none
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
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
