"""`estimate_input_tokens`: a tokenizer-free estimate of a Messages request's input tokens."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["estimate_input_tokens"]

_IMAGE_TOKENS = 1600  # Anthropic's figure for a ~1.15 megapixel image
_PER_MESSAGE = 4  # role and turn framing


def _size(content: Any) -> tuple[int, int]:
    """(UTF-8 bytes of text, number of images) in a content value."""
    if isinstance(content, str):
        return len(content.encode()), 0
    if not isinstance(content, list):
        return 0, 0
    size = images = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "image":
            images += 1
        elif kind == "text":
            size += len(str(block.get("text", "")).encode())
        elif kind == "tool_use":
            size += len(json.dumps(block.get("input") or {}).encode()) + len(block.get("name", ""))
        elif kind == "tool_result":
            inner, inner_images = _size(block.get("content"))
            size, images = size + inner, images + inner_images
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") in ("text", "content"):
                inner, inner_images = _size(source.get("data") or source.get("content"))
                size, images = size + inner, images + inner_images
    return size, images


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """About one token per 4 UTF-8 bytes of text (system, message text, tool inputs and results,
    text documents, and the JSON of tool definitions; PDFs are not counted), plus 4 tokens per
    message and 1600 per image. English text averages ~4 bytes per token in the Claude, GPT and
    Llama tokenizers; the figure is an estimate (tierwise has no Anthropic tokenizer), not the
    count the provider will bill."""
    size, images = _size(body.get("system"))
    messages = body.get("messages") or []
    for message in messages:
        if isinstance(message, dict):
            more, more_images = _size(message.get("content"))
            size, images = size + more, images + more_images
    if body.get("tools"):
        size += len(json.dumps(body["tools"]).encode())
    return math.ceil(size / 4) + _PER_MESSAGE * len(messages) + _IMAGE_TOKENS * images
