"""The `Upstream` seam: one tier's model endpoint, called with an OpenAI chat request body."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Reply", "Stream", "Upstream", "Usage", "UsageSniffer", "usage_from"]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


def usage_from(payload: Any) -> Usage | None:
    """The usage of an OpenAI-shaped response or chunk dict, if it reports one."""
    if not isinstance(payload, dict):
        return None
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    try:
        return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class Reply:
    """A non-streamed answer: the upstream's status and body bytes, passed through unchanged."""

    status: int
    body: bytes
    usage: Usage | None = None


class Stream(Protocol):
    """An open SSE stream: iterate raw bytes, then read `usage`; always `aclose()`."""

    status: int

    @property
    def usage(self) -> Usage | None: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    """One tier's endpoint. Raises `UpstreamError` / `UpstreamTimeout` for failures; a 4xx answer
    from the upstream comes back as a `Reply` (also from `stream`, which never started)."""

    tier: str
    model_name: str

    async def complete(self, body: dict[str, Any]) -> Reply: ...

    async def stream(self, body: dict[str, Any]) -> Stream | Reply: ...

    async def aclose(self) -> None: ...


class UsageSniffer:
    """Finds the usage object in a passing SSE byte stream without re-encoding anything.

    Only chunks that contain `"usage"` are parsed (OpenAI sends usage in the last chunk when
    `stream_options.include_usage` is set, and some servers send it on every chunk).
    """

    __slots__ = ("_pending", "usage")

    def __init__(self) -> None:
        self._pending = b""
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> None:
        if not self._pending and b'"usage"' not in chunk:
            return
        data = self._pending + chunk
        events = data.split(b"\n\n")
        self._pending = events.pop()
        if len(self._pending) > 1 << 20:  # a runaway event: give up on it
            self._pending = b""
        for event in events:
            self._parse(event)

    def finish(self) -> None:
        if self._pending:
            self._parse(self._pending)
            self._pending = b""

    def _parse(self, event: bytes) -> None:
        if b'"usage"' not in event:
            return
        for line in event.splitlines():
            if line.startswith(b"data:"):
                try:
                    found = usage_from(json.loads(line[5:]))
                except ValueError:
                    continue
                if found is not None:
                    self.usage = found
