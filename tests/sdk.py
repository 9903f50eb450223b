"""The official SDK clients the tests use, kept open until the end of the session and then
closed, so no socket is left for the garbage collector (warnings are errors here)."""

from __future__ import annotations

from typing import Any

import anthropic
import openai

__all__ = ["anthropic_client", "close_all", "openai_client"]

_OPEN: list[openai.OpenAI | anthropic.Anthropic] = []


def openai_client(**kwargs: Any) -> openai.OpenAI:
    client = openai.OpenAI(**kwargs)
    _OPEN.append(client)
    return client


def anthropic_client(**kwargs: Any) -> anthropic.Anthropic:
    client = anthropic.Anthropic(**kwargs)
    _OPEN.append(client)
    return client


def close_all() -> None:
    while _OPEN:
        _OPEN.pop().close()
