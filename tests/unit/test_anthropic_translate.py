"""The Anthropic <-> OpenAI translation table, field by field, both directions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.anthropic.tokens import estimate_input_tokens
from router.anthropic.translate import answer_message, to_anthropic, to_openai, validate
from router.errors import BadRequest, anthropic_error_body, anthropic_error_type

BASE: dict[str, Any] = {
    "model": "auto",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_scalars() -> None:
    body = BASE | {
        "temperature": 0.3,
        "top_p": 0.8,
        "top_k": 7,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
        "stream": True,
    }
    assert to_openai(body) == {
        "model": "auto",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100,
        "temperature": 0.3,
        "top_p": 0.8,
        "top_k": 7,
        "stop": ["END"],
        "user": "u1",
        "stream": True,
    }


@pytest.mark.parametrize(
    "system",
    ["Be terse.", [{"type": "text", "text": "Be"}, {"type": "text", "text": "terse."}]],
)
def test_system_string_or_blocks(system: Any) -> None:
    first = to_openai(BASE | {"system": system})["messages"][0]
    assert first["role"] == "system"
    assert first["content"] in ("Be terse.", "Be\n\nterse.")


def test_content_blocks_text_and_images() -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
    ]
    (message,) = to_openai(BASE | {"messages": [{"role": "user", "content": content}]})["messages"]
    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        ],
    }
    text_only = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    (message,) = to_openai(BASE | {"messages": [{"role": "user", "content": text_only}]})[
        "messages"
    ]
    assert message == {"role": "user", "content": "a\n\nb"}


def test_tool_use_and_tool_result() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "boom"}],
                    "is_error": True,
                },
                {"type": "text", "text": "and tomorrow?"},
            ],
        },
    ]
    out = to_openai(BASE | {"messages": messages})["messages"]
    assert out[1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "weather", "arguments": json.dumps({"city": "Oslo"})},
            }
        ],
    }
    assert out[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"}
    assert out[3] == {"role": "tool", "tool_call_id": "toolu_2", "content": "[tool error] boom"}
    assert out[4] == {"role": "user", "content": "and tomorrow?"}


def test_tools_and_tool_choice() -> None:
    tool = {"name": "f", "description": "does f", "input_schema": {"type": "object"}}
    out = to_openai(BASE | {"tools": [tool]})
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}, "description": "does f"},
        }
    ]
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ]
    for choice, expected in cases:
        assert to_openai(BASE | {"tool_choice": choice})["tool_choice"] == expected
    out = to_openai(BASE | {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}})
    assert out["parallel_tool_calls"] is False
    with pytest.raises(BadRequest):
        to_openai(BASE | {"tools": [{"type": "web_search_20250305", "name": "web_search"}]})


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_response_stop_reasons(finish: str, stop: str) -> None:
    payload = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}
    assert to_anthropic(payload, "auto")["stop_reason"] == stop


def test_response_content_usage_and_identity() -> None:
    payload = {
        "id": "chatcmpl-1",
        "model": "qwen",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "Let me look.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": 1}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }
    answer = to_anthropic(payload, "auto")
    assert answer["id"].startswith("msg_") and answer["model"] == "auto"
    assert answer["type"] == "message" and answer["role"] == "assistant"
    assert answer["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
    ]
    assert answer["stop_reason"] == "tool_use" and answer["stop_sequence"] is None
    assert answer["usage"] == {"input_tokens": 11, "output_tokens": 7}
    assert answer_message(answer)["content"] == "Let me look."
    assert answer_message(answer)["tool_calls"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_shape(status: int, kind: str) -> None:
    assert anthropic_error_type(status) == kind
    assert json.loads(anthropic_error_body(status, "no")) == {
        "type": "error",
        "error": {"type": kind, "message": "no"},
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "auto", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "auto", "max_tokens": 5}, "messages"),
        (
            {"model": "auto", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "role",
        ),
    ],
)
def test_validation_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest, match=field):
        validate(body)


def test_token_estimate() -> None:
    assert estimate_input_tokens(BASE) == 1 + 4
    text = {"role": "user", "content": "x" * 400}
    image = {"type": "image", "source": {"type": "url", "url": "u"}}
    body = BASE | {"system": "y" * 40, "messages": [text, {"role": "user", "content": [image]}]}
    assert estimate_input_tokens(body) == 110 + 8 + 1600
