"""The `Upstream` seam: one tier's model endpoint, called with an OpenAI chat request body."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from router.errors import UpstreamError, check_upstream_status

if TYPE_CHECKING:
    from router.upstreams.transports.base import RawResponse, Sender

__all__ = [
    "JsonUpstream",
    "Reply",
    "SSEEvents",
    "Stream",
    "Upstream",
    "Usage",
    "UsageTap",
    "event_data",
    "read_and_close",
    "refused_stream",
    "usage_from",
]


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

    async def stream(self, body: dict[str, Any], strip_usage: bool = False) -> Stream | Reply:
        """`strip_usage`: drop the usage-only chunk (the caller asked for usage only for
        billing, not on behalf of its client)."""
        ...

    async def aclose(self) -> None: ...


async def read_and_close(response: RawResponse) -> bytes:
    """The whole body of an upstream answer; the response is closed whatever happens."""
    try:
        return await response.read()
    finally:
        await response.aclose()


async def refused_stream(tier: str, response: RawResponse) -> Reply:
    """A stream request the upstream answered with an error status: its body as a `Reply`
    (4xx pass through), or `UpstreamError` for 5xx / refused credentials."""
    try:
        content = await read_and_close(response)
    except UpstreamError:
        content = b""
    check_upstream_status(tier, response.status)
    return Reply(response.status, content)


class SSEEvents:
    """Splits a server-sent-event byte stream into whole events (the text before each blank
    line), holding back an incomplete one until the next chunk. An event that grows past 1 MiB
    without ending is given up as it is (a runaway upstream), not held without bound."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    @property
    def holding(self) -> bool:
        return bool(self._pending)

    def split(self, chunk: bytes) -> list[bytes]:
        """The events completed by `chunk`, without their terminating blank line."""
        events = (self._pending + chunk).split(b"\n\n")
        self._pending = events.pop()
        if len(self._pending) > 1 << 20:
            events.append(self._pending)
            self._pending = b""
        return events

    def rest(self) -> bytes:
        """What is still held back at the end of the stream."""
        rest, self._pending = self._pending, b""
        return rest


_UNREADABLE = object()


def event_data(event: bytes) -> Any:
    """The JSON of an SSE event's first `data:` line; `None` when it has none, and the
    `_UNREADABLE` marker when that line is not JSON."""
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                return json.loads(line[5:])
            except ValueError:
                return _UNREADABLE
    return None


class UsageTap:
    """Reads the usage object out of a passing OpenAI SSE byte stream, and can drop the
    usage-only event (`"choices": []`) for clients that did not ask for it.

    tierwise always asks streaming upstreams for usage (`stream_options.include_usage`) so that
    every stream is billed from real token counts. Only chunks containing `"usage"` are parsed;
    all others pass through untouched, as the same bytes object.
    """

    __slots__ = ("_events", "data_events", "strip", "usage")

    def __init__(self, strip: bool = False) -> None:
        self._events = SSEEvents()
        self.strip = strip
        self.usage: Usage | None = None
        self.data_events = 0  # `data:` lines seen (for `estimated` when no usage comes)

    def feed(self, chunk: bytes) -> bytes:
        self.data_events += chunk.count(b"data:")
        if not self._events.holding and b'"usage"' not in chunk:
            return chunk
        return b"".join(e + b"\n\n" for e in self._events.split(chunk) if self._keep(e))

    def estimated(self, prompt_bound: int) -> Usage:
        """For a stream that reported no usage (llama.cpp's server ignores `include_usage`): the
        request's prompt-token upper bound, and one completion token per `data:` event. Servers
        that stream a token per event (llama.cpp does) are over-counted by the role, finish and
        `[DONE]` events, never under-counted; the others report usage."""
        return Usage(prompt_bound, self.data_events)

    def finish(self) -> bytes:
        """What is still held back at the end of the stream."""
        rest = self._events.rest()
        return rest if rest and self._keep(rest) else b""

    def _keep(self, event: bytes) -> bool:
        if b'"usage"' not in event:
            return True
        payload = event_data(event)
        found = usage_from(payload)
        if found is None:
            return True
        self.usage = found
        return not (self.strip and payload.get("choices") == [])


class JsonUpstream:
    """What the native HTTP upstreams share: a pooled `Sender` for one URL, JSON request bodies,
    and a non-streamed answer passed through as bytes with its usage read by `_usage`."""

    def __init__(self, tier: str, model_name: str, sender: Sender) -> None:
        self.tier = tier
        self.model_name = model_name
        self._sender = sender

    def _payload(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body as sent (a subclass may rewrite fields)."""
        return body

    def _usage(self, answer: dict[str, Any]) -> Usage | None:
        raise NotImplementedError

    async def _post(self, body: dict[str, Any]) -> RawResponse:
        payload = json.dumps(self._payload(body), separators=(",", ":")).encode()
        return await self._sender.post(payload)

    async def complete(self, body: dict[str, Any]) -> Reply:
        response = await self._post(body)
        content = await read_and_close(response)
        check_upstream_status(self.tier, response.status)
        usage = None
        if response.status == 200:
            try:
                answer = json.loads(content)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise UpstreamError(self.tier, "answer is not a JSON object")
            usage = self._usage(answer)
        return Reply(response.status, content, usage)

    async def _open(self, body: dict[str, Any]) -> RawResponse | Reply:
        """An open streaming response, or a `Reply` when the upstream refused with a 4xx."""
        response = await self._post(body)
        if response.status != 200:
            return await refused_stream(self.tier, response)
        return response

    async def aclose(self) -> None:
        await self._sender.aclose()
