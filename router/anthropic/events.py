"""`EventTranslator`: OpenAI chat-completion SSE bytes in, Anthropic Messages SSE bytes out.

Stateful and pure (bytes in, bytes out). It emits Anthropic's full event sequence:
`message_start` (with usage), for each content block `content_block_start` / `_delta`
(`text_delta`, `input_json_delta` for tool arguments) / `_stop`, then `message_delta` (stop
reason and usage) and `message_stop`. OpenAI reports usage only at the end of a stream, so
`message_start` carries the caller's input-token estimate and `message_delta` the real counts
(the SDKs overwrite the estimate with them).
"""

from __future__ import annotations

import json
from typing import Any

from router.anthropic.translate import STOP_REASONS, message_id, usage_block

__all__ = ["EventTranslator", "sse_event"]


def sse_event(kind: str, data: dict[str, Any]) -> bytes:
    """One Anthropic SSE event (`event:` line and `data:` line)."""
    payload = json.dumps({"type": kind, **data}, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n".encode()


class EventTranslator:
    """Feed raw OpenAI SSE bytes (split anywhere), get Anthropic SSE bytes."""

    def __init__(self, model: str, input_tokens: int = 0) -> None:
        self._model = model
        self._input_tokens = input_tokens
        self._pending = b""
        self._started = False
        self._ended = False
        self._index = -1  # index of the open content block, -1 when none is open
        self._open: str | None = None  # "text" or the OpenAI tool-call index "tool:N"
        self._stop: str | None = None
        self._usage: dict[str, int] | None = None

    def feed(self, chunk: bytes) -> bytes:
        events = (self._pending + chunk).split(b"\n\n")
        self._pending = events.pop()
        return b"".join(self._event(e) for e in events)

    def finish(self) -> bytes:
        """The end of the stream: whatever is held back, then the closing events if the upstream
        did not send `[DONE]`."""
        rest, self._pending = self._pending, b""
        out = self._event(rest) if rest.strip() else b""
        return out + self._end()

    def error(self, error: Any, kind: str = "api_error") -> bytes:
        """An `error` event ending the stream (the upstream failed after the first byte)."""
        self._ended = True
        message = error.get("message") if isinstance(error, dict) else error
        body = {"type": kind, "message": str(message or "upstream error")}
        return sse_event("error", {"error": body})

    # -- internals ------------------------------------------------------------------------------

    def _event(self, event: bytes) -> bytes:
        out = []
        for line in event.splitlines():
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                out.append(self._end())
                continue
            try:
                payload = json.loads(data)
            except ValueError:
                continue
            if isinstance(payload, dict):
                out.append(self._chunk(payload))
        return b"".join(out)

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
        }
        return sse_event("message_start", {"message": message}) + sse_event("ping", {})

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return sse_event("content_block_stop", {"index": self._index})

    def _open_block(self, key: str, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        self._index += 1
        self._open = key
        return out + sse_event(
            "content_block_start", {"index": self._index, "content_block": block}
        )

    def _chunk(self, payload: dict[str, Any]) -> bytes:
        if "error" in payload and "choices" not in payload:
            return self.error(payload["error"])
        out = [self._start()]
        if isinstance(payload.get("usage"), dict):
            self._usage = usage_block(payload["usage"])
        for choice in payload.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._open != "text":
                    out.append(self._open_block("text", {"type": "text", "text": ""}))
                delta_event = {"type": "text_delta", "text": text}
                out.append(
                    sse_event("content_block_delta", {"index": self._index, "delta": delta_event})
                )
            for call in delta.get("tool_calls") or []:
                out.append(self._tool_delta(call))
            if choice.get("finish_reason"):
                self._stop = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return b"".join(out)

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        key = f"tool:{call.get('index', 0)}"
        function = call.get("function") or {}
        if self._open != key:
            block = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{message_id()[4:]}",
                "name": function.get("name", ""),
                "input": {},
            }
            out += self._open_block(key, block)
        arguments = function.get("arguments")
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out += sse_event("content_block_delta", {"index": self._index, "delta": delta})
        return out

    def _end(self) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        usage = self._usage or {"input_tokens": self._input_tokens, "output_tokens": 0}
        delta = {"stop_reason": self._stop or "end_turn", "stop_sequence": None}
        return (
            self._start()
            + self._close_block()
            + sse_event("message_delta", {"delta": delta, "usage": usage})
            + sse_event("message_stop", {})
        )
