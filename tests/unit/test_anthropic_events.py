"""The streaming translator: OpenAI chat-completion SSE in, Anthropic's event sequence out."""

from __future__ import annotations

import json
from typing import Any

from router.anthropic.events import EventTranslator


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    payload = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}\n\n'


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        kind_line, data_line = block.split("\n")
        kind = kind_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == kind
        out.append((kind, data))
    return out


def test_text_stream_split_anywhere() -> None:
    source = (
        _chunk({"role": "assistant", "content": ""})
        + _chunk({"content": "Hel"})
        + _chunk({"content": "lo"})
        + _chunk({}, "stop")
        + USAGE
        + b"data: [DONE]\n\n"
    )
    t = EventTranslator("auto", input_tokens=3)
    raw = b"".join(t.feed(source[i : i + 7]) for i in range(0, len(source), 7)) + t.finish()
    events = _events(raw)
    assert [k for k, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["model"] == "auto" and start["id"].startswith("msg_")
    assert start["usage"] == {"input_tokens": 3, "output_tokens": 0}
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(d["delta"]["text"] for k, d in events if k == "content_block_delta")
    assert text == "Hello"
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 9, "output_tokens": 4}


def test_text_then_two_tool_calls() -> None:
    call0 = {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": '{"x"'}}
    call0b = {"index": 0, "function": {"arguments": ": 1}"}}
    call1 = {"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}
    t = EventTranslator("m")
    raw = t.feed(
        _chunk({"content": "ok"})
        + _chunk({"tool_calls": [call0]})
        + _chunk({"tool_calls": [call0b]})
        + _chunk({"tool_calls": [call1]})
        + _chunk({}, "tool_calls")
    )
    raw += t.finish()  # no [DONE]: the end still closes the message
    events = _events(raw)
    starts = [d for k, d in events if k == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    assert starts[1]["content_block"] == {
        "type": "tool_use",
        "id": "call_a",
        "name": "f",
        "input": {},
    }
    assert starts[2]["content_block"]["name"] == "g"
    partial = [
        d["delta"]["partial_json"]
        for k, d in events
        if k == "content_block_delta" and d["index"] == 1
    ]
    assert json.loads("".join(partial)) == {"x": 1}
    stops = [d["index"] for k, d in events if k == "content_block_stop"]
    assert stops == [0, 1, 2]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-1][0] == "message_stop"


def test_length_and_error_events() -> None:
    t = EventTranslator("m")
    raw = t.feed(_chunk({"content": "a"}, "length") + b"data: [DONE]\n\n")
    assert _events(raw)[-2][1]["delta"]["stop_reason"] == "max_tokens"
    t = EventTranslator("m")
    t.feed(_chunk({"content": "a"}))
    raw = t.feed(b'data: {"error": {"message": "boom"}}\n\n')
    assert _events(raw) == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})
    ]
    assert t.finish() == b""
