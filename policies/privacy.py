"""Privacy routing: which requests must stay on `local: true` tiers (pure).

`keep_local_rule(...)` gives the first rule of `privacy.keep_local` a request meets, named for
the decision header and the request log without the text it matched: `key:<label>`,
`team:<team>`, `tag:<tag>`, `detector:<name>` (`policies.detectors`), `pattern:<index>`,
`term:<index>`. `request_text(body)` is what the detectors and patterns read: every message's
text (system prompt included), tool call arguments and tool results, of an OpenAI chat body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from policies.detectors import DETECTORS
from policies.guards import KeepLocal

__all__ = ["keep_local_rule", "request_tags", "request_text"]


def _strings(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                yield block
            elif isinstance(block, Mapping):
                for key in ("text", "content", "input", "arguments"):
                    yield from _strings(block.get(key))
    elif isinstance(content, Mapping):
        for value in content.values():
            yield from _strings(value)


def request_text(body: Mapping[str, Any]) -> str:
    """All the text of an OpenAI chat body's messages, joined by newlines."""
    parts: list[str] = []
    for message in body.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        parts.extend(_strings(message.get("content")))
        for call in message.get("tool_calls") or []:
            if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                parts.extend(_strings(call["function"].get("arguments")))
    return "\n".join(parts)


def request_tags(header: str | None, body: Mapping[str, Any]) -> list[str]:
    """Tags from `x-tierwise-tags: a, b` and the body's `metadata.tags` (a list or a
    comma-separated string)."""
    tags = [t.strip() for t in (header or "").split(",") if t.strip()]
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping):
        given = metadata.get("tags")
        if isinstance(given, str):
            tags += [t.strip() for t in given.split(",") if t.strip()]
        elif isinstance(given, list):
            tags += [t.strip() for t in given if isinstance(t, str) and t.strip()]
    return tags


def keep_local_rule(
    rules: KeepLocal,
    caller: str | None,
    team: str | None,
    tags: Sequence[str],
    text: str,
    compiled: Sequence[re.Pattern[str]] = (),
) -> str | None:
    """The first rule that keeps the request local, or None. `compiled`: `rules.patterns`
    compiled once (`KeepLocal.compiled()`)."""
    if caller is not None and caller in rules.keys:
        return f"key:{caller}"
    if team is not None and team in rules.teams:
        return f"team:{team}"
    for tag in tags:
        if tag in rules.tags:
            return f"tag:{tag}"
    if not text:
        return None
    for name in rules.detectors:
        if DETECTORS[name](text):
            return f"detector:{name}"
    for i, pattern in enumerate(compiled or rules.compiled()):
        if pattern.search(text):
            return f"pattern:{i}"
    if rules.terms:
        lowered = text.lower()
        for i, term in enumerate(rules.terms):
            if term.lower() in lowered:
                return f"term:{i}"
    return None
