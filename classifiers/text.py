"""Which text of a chat request is scored: the one place that decides it.

Training and serving both call :func:`scoring_text`, so the classifier sees the same view of a
request in both. The view is the system prompt(s) plus the last user turn; earlier turns only
contribute conversation-shape features (see :class:`ConversationShape`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ConversationShape", "content_text", "conversation_shape", "scoring_text"]


def content_text(content: Any) -> str:
    """The plain text of a message's `content`: a string, or a list of OpenAI/Anthropic blocks.

    Text blocks are joined with newlines; images, audio and other non-text blocks are skipped.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable) and not isinstance(content, (bytes, Mapping)):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(parts)
    return ""


def scoring_text(messages: Sequence[Mapping[str, Any]], system: Any = None) -> str:
    """System prompt(s) plus the last user turn, as one string.

    `system` is the Anthropic-style top-level system prompt (string or blocks); OpenAI-style
    requests carry it as `system`/`developer` messages instead. Returns "" when there is no user
    turn and no system prompt.
    """
    systems: list[str] = []
    if system is not None:
        text = content_text(system)
        if text:
            systems.append(text)
    last_user = ""
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = content_text(message.get("content"))
            if text:
                systems.append(text)
        elif role == "user":
            last_user = content_text(message.get("content"))
    if systems:
        return "\n".join([*systems, last_user]) if last_user else "\n".join(systems)
    return last_user


@dataclass(frozen=True, slots=True)
class ConversationShape:
    """Cheap features of the conversation around the scored text."""

    turns: int
    user_turns: int
    has_system: bool
    has_tools: bool


def conversation_shape(
    messages: Sequence[Mapping[str, Any]], system: Any = None, tools: Any = None
) -> ConversationShape:
    """Count turns and note system prompts and tool use."""
    user_turns = sum(1 for m in messages if m.get("role") == "user")
    has_system = system is not None or any(
        m.get("role") in ("system", "developer") for m in messages
    )
    has_tools = bool(tools) or any(m.get("role") == "tool" for m in messages)
    return ConversationShape(
        turns=len(messages), user_turns=user_turns, has_system=has_system, has_tools=has_tools
    )
