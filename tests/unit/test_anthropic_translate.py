"""The Anthropic <-> OpenAI translation table, field by field, both directions."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from classifiers import scoring_text
from router.anthropic.tokens import estimate_input_tokens
from router.anthropic.translate import answer_message, to_anthropic, to_openai, validate
from router.anthropic.validate import validate_count_tokens
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
    with pytest.raises(BadRequest, match="only custom tools"):
        validate(BASE | {"tools": [{"type": "web_search_20250305", "name": "web_search"}]})


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


# -- validation of every field the translation reads (issue 14) -----------------------------------

USER_TEXT: dict[str, Any] = {"role": "user", "content": "hi"}


def _turn(*blocks: Any, role: str = "user") -> dict[str, Any]:
    return BASE | {"messages": [{"role": role, "content": list(blocks)}]}


def _after_call(*blocks: Any) -> dict[str, Any]:
    call = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    messages = [
        USER_TEXT,
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": list(blocks)},
    ]
    return BASE | {"messages": messages}


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}}
INVALID: list[tuple[dict[str, Any], str]] = [
    (_turn(1, 2), "messages.0.content.0: must be a content block"),
    (_turn("hi", "there"), "messages.0.content.0: must be a content block"),
    (_turn({"text": "no type"}), "messages.0.content.0.type: Field required"),
    (_turn({"type": "text", "text": 5}),
     "messages.0.content.0.text: must be a string, not a number"),
    (_turn({"type": "text"}), "messages.0.content.0.text: Field required"),
    (_turn({"type": "image", "source": "http://x.test/a.png"}),
     "messages.0.content.0.source: must be an object, not a string"),
    (_turn({"type": "image"}), "messages.0.content.0.source: Field required"),
    (_turn({"type": "image", "source": {"type": "base64", "media_type": "image/png"}}),
     "messages.0.content.0.source.data: Field required"),
    (_turn({"type": "image", "source": {"type": "url", "url": 7}}),
     "messages.0.content.0.source.url: must be a string, not a number"),
    (_turn({"type": "image", "source": {"type": "file", "file_id": "f"}}),
     "image source type 'file' is not supported here"),
    (_turn({"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}),
     "messages.0.content.0.source.type: document source type 'url' is not supported here"),
    (_turn({"type": "document", "source": {"type": "text", "data": 3}}),
     "messages.0.content.0.source.data: must be a string, not a number"),
    (_turn({"type": "document", "source": {"type": "base64", "media_type": "image/png",
                                           "data": "QUJD"}}),
     "messages.0.content.0.source.media_type: a 'base64' document source must be"),
    (_turn({"type": "document", "source": {"type": "content", "content": [5]}}),
     "messages.0.content.0.source.content.0: must be a content block"),
    (_turn({"type": "document", "source": {"type": "text", "data": "x"}, "title": 1}),
     "messages.0.content.0.title: must be a string"),
    (_turn({"type": "search_result", "source": "s", "title": "t", "content": []}),
     "messages.0.content.0.type: 'search_result' blocks cannot be routed"),
    (_turn({"type": "tool_use", "id": "t", "name": "f", "input": {}}),
     "messages.0.content.0.type: 'tool_use' blocks cannot be in a user message"),
    (_turn({"type": "tool_result", "tool_use_id": "t"}, role="assistant"),
     "'tool_result' blocks cannot be in an assistant message"),
    (_turn(IMAGE, role="assistant"), "'image' blocks cannot be in an assistant message"),
    (_turn({"type": "thinking", "thinking": "hm", "signature": "s"}),
     "'thinking' blocks cannot be in a user message"),
    (_turn({"type": "tool_use", "id": "t", "name": "f", "input": [1]}, role="assistant"),
     "messages.0.content.0.input: must be an object, not a list"),
    (_turn({"type": "tool_use", "id": "t", "name": "f"}, role="assistant"),
     "messages.0.content.0.input: Field required"),
    (_turn({"type": "tool_use", "name": "f", "input": {}}, role="assistant"),
     "messages.0.content.0.id: Field required"),
    (_turn({"type": "thinking", "thinking": "hm"}, role="assistant"),
     "messages.0.content.0.signature: Field required"),
    (_turn({"type": "redacted_thinking", "data": None}, role="assistant"),
     "messages.0.content.0.data: must be a string, not null"),
    (_after_call({"type": "tool_result", "content": "x"}),
     "messages.2.content.0.tool_use_id: Field required"),
    (_after_call({"type": "tool_result", "tool_use_id": "t1", "content": 5}),
     "messages.2.content.0.content: must be a string or a list of blocks, not a number"),
    (_after_call({"type": "tool_result", "tool_use_id": "t1", "content": ["x"]}),
     "messages.2.content.0.content.0: must be a content block"),
    (_after_call({"type": "tool_result", "tool_use_id": "t1", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}),
     "'tool_use' blocks cannot be in a tool_result"),
    (_after_call({"type": "tool_result", "tool_use_id": "t1", "is_error": "yes"}),
     "messages.2.content.0.is_error: must be a boolean, not a string"),
    (_turn(), "messages.0.content: must not be empty"),
    (BASE | {"messages": [{"role": "assistant", "content": []}, USER_TEXT]},
     "messages.0.content: must not be empty"),
    (BASE | {"messages": ["hi"]}, "messages.0: must be an object"),
    (BASE | {"messages": [{"role": "user", "content": {"type": "text", "text": "x"}}]},
     "messages.0.content: must be a string or a list of blocks, not an object"),
    (BASE | {"system": 42}, "system: must be a string or a list of text blocks, not a number"),
    (BASE | {"system": {"type": "text", "text": "x"}}, "system: must be a string or a list"),
    (BASE | {"system": ["be brief"]}, "system.0: must be a content block"),
    (BASE | {"system": [IMAGE]}, "system.0.type: 'image' blocks cannot be in system"),
    (BASE | {"tools": "search"}, "tools: must be a list of tool definitions, not a string"),
    (BASE | {"tools": 5}, "tools: must be a list of tool definitions, not a number"),
    (BASE | {"tools": [5]}, "tools.0: only custom tools (with input_schema) can be routed"),
    (BASE | {"tools": [{"name": 5, "input_schema": {}}]}, "tools.0.name: must be a string"),
    (BASE | {"tools": [{"name": "", "input_schema": {}}]}, "tools.0.name: must not be empty"),
    (BASE | {"tools": [{"name": "f", "input_schema": "object"}]},
     "tools.0.input_schema: must be an object (a JSON schema), not a string"),
    (BASE | {"tools": [{"name": "f", "input_schema": {}, "description": ["d"]}]},
     "tools.0.description: must be a string, not a list"),
    (BASE | {"tool_choice": "auto"}, "tool_choice: must be an object"),
    (BASE | {"tool_choice": {"type": "maybe"}}, "tool_choice.type: unknown value 'maybe'"),
    (BASE | {"tool_choice": {"type": "tool"}}, "tool_choice.name: Field required"),
    (BASE | {"tool_choice": {"type": "auto", "disable_parallel_tool_use": "no"}},
     "tool_choice.disable_parallel_tool_use: must be a boolean"),
    (BASE | {"stop_sequences": "END"}, "stop_sequences: must be a list of strings, not a string"),
    (BASE | {"stop_sequences": ["a", 1]}, "stop_sequences.1: must be a string, not a number"),
    (BASE | {"temperature": "hot"}, "temperature: must be a number, not a string"),
    (BASE | {"temperature": float("nan")}, "temperature: must be a finite number, not nan"),
    (BASE | {"top_p": True}, "top_p: must be a number, not a boolean"),
    (BASE | {"top_k": 2.5}, "top_k: must be an integer, not a number"),
    (BASE | {"metadata": "u1"}, "metadata: must be an object, not a string"),
    (BASE | {"metadata": {"user_id": 7}}, "metadata.user_id: must be a string, not a number"),
    (BASE | {"stream": "yes"}, "stream: must be a boolean, not a string"),
    (BASE | {"max_tokens": "10"}, "max_tokens: must be a positive integer, not a string"),
    (BASE | {"max_tokens": 0}, "max_tokens: must be a positive integer, not 0"),
    (BASE | {"max_tokens": True}, "max_tokens: must be a positive integer, not a boolean"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "needle"), INVALID)
def test_invalid_shapes_are_bad_requests_naming_the_field(
    body: dict[str, Any], needle: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        validate(body)
    assert needle in caught.value.message


def test_count_tokens_checks_the_same_shapes_without_max_tokens() -> None:
    assert validate_count_tokens({"model": "m", "messages": []}) == {"model": "m", "messages": []}
    assert validate_count_tokens(BASE | {"max_tokens": None})
    for body, needle in INVALID:
        if "max_tokens" in needle or "stream" in needle or "stop_sequences" in needle:
            continue
        if any(key in body for key in ("temperature", "top_p", "top_k", "metadata")):
            continue
        with pytest.raises(BadRequest) as caught:
            validate_count_tokens(body)
        assert needle in caught.value.message
    with pytest.raises(BadRequest, match="model: Field required"):
        validate_count_tokens({"messages": []})
    with pytest.raises(BadRequest, match="messages: Field required"):
        validate_count_tokens({"model": "m", "messages": {}})


def test_valid_shapes_nulls_and_unknown_fields_pass() -> None:
    body = BASE | {
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", "vendor": [1]}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1"},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                "data": "doc"}, "title": None},
            ]},
            {"role": "assistant", "content": []},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "type": "custom"}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": None},
        "stop_sequences": None, "temperature": None, "top_p": 1, "top_k": None,
        "metadata": {"user_id": None}, "stream": None, "thinking": {"type": "disabled"},
        "vendor_knob": {"deep": [1, [2]]},
    }  # fmt: skip
    assert validate(body) is body
    chat = to_openai(body)
    assert chat["messages"][-1] == {"role": "assistant", "content": ""}
    assert "stream" not in chat and "user" not in chat


def test_documents_are_translated_not_dropped() -> None:
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
        "title": "spec.pdf",
    }
    text = {
        "type": "document",
        "source": {"type": "text", "data": "the text"},
        "title": "Notes",
        "context": "from the wiki",
    }
    content = {
        "type": "document",
        "source": {"type": "content", "content": [{"type": "text", "text": "part one"}, IMAGE]},
    }
    (message,) = to_openai(validate(_turn(pdf, text, content)))["messages"]
    assert message == {"role": "user", "content": [
        {"type": "text", "text": "spec.pdf"},
        {"type": "file", "file": {"filename": "spec.pdf",
                                  "file_data": "data:application/pdf;base64,JVBER"}},
        {"type": "text", "text": "Notes\n\nfrom the wiki\n\nthe text"},
        {"type": "text", "text": "part one"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
    ]}  # fmt: skip
    (only_text,) = to_openai(validate(_turn(text)))["messages"]
    assert only_text == {"role": "user", "content": "Notes\n\nfrom the wiki\n\nthe text"}


def test_images_in_tool_results_follow_in_the_user_message() -> None:
    body = _after_call(
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "ok"},
                                                                 IMAGE]},
        {"type": "tool_result", "tool_use_id": "t2", "content": [IMAGE], "is_error": False},
        {"type": "text", "text": "what do you see?"},
    )  # fmt: skip
    out = to_openai(validate(body))["messages"]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}
    assert out[2] == {"role": "tool", "tool_call_id": "t1", "content": "ok"}
    assert out[3]["role"] == "tool" and out[3]["tool_call_id"] == "t2"
    assert "next user message" in out[3]["content"]
    assert out[4] == {
        "role": "user",
        "content": [image, image, {"type": "text", "text": "what do you see?"}],
    }


def _junk(rng: random.Random) -> Any:
    pool: list[Any] = [
        None, True, False, 0, -1, 7, 2.5, 10**30, "", "x", "text", "image", "tool_use", [], {},
        [1, "a"], ["s"], {"type": "text"}, {"type": 7}, {"type": "image", "source": "s"},
        {"type": "text", "text": "t"}, {"type": "base64"}, {"type": "url", "url": 1},
        [{"type": "text", "text": "t"}], {"a": {"b": [None]}},
    ]  # fmt: skip
    return rng.choice(pool)


def rich_body() -> dict[str, Any]:
    """A Messages body with every field and block type the translation reads."""
    return {
        "model": "cheap",
        "max_tokens": 32,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"}, IMAGE,
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                {"type": "document", "source": {"type": "text", "data": "doc"}, "title": "t"},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"q": "x"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [
                    {"type": "text", "text": "r"}, IMAGE], "is_error": False},
                {"type": "text", "text": "and?"},
            ]},
        ],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "metadata": {"user_id": "u"},
        "stream": False,
    }  # fmt: skip


def mutate(body: Any, rng: random.Random, skip: tuple[str, ...] = ("model",)) -> Any:
    """`body` with one random value somewhere inside it replaced, removed or added to."""
    if not isinstance(body, dict | list) or not body or rng.random() < 0.08:
        return _junk(rng)
    if isinstance(body, dict):
        keys = [k for k in body if k not in skip]
        if not keys:
            return body
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.15:
            return {k: v for k, v in body.items() if k != key}
        return body | {key: mutate(body[key], rng, ())}
    i = rng.randrange(len(body))
    roll = rng.random()
    if roll < 0.1:
        return [*body[:i], *body[i + 1 :]]
    if roll < 0.2:
        return [*body[:i], _junk(rng), *body[i:]]
    return [*body[:i], mutate(body[i], rng, ()), *body[i + 1 :]]


def test_random_malformed_bodies_are_bad_requests_or_translate_cleanly() -> None:
    rng = random.Random(20261204)
    outcomes = {"valid": 0, "invalid": 0}
    for _ in range(3000):
        body = rich_body()
        for _ in range(rng.randint(1, 3)):
            body = mutate(body, rng)
        try:
            validate(body)
        except BadRequest as exc:
            assert exc.message and exc.status == 400
            outcomes["invalid"] += 1
            continue
        outcomes["valid"] += 1
        chat = to_openai(body)  # nothing but BadRequest may escape, and a valid body translates
        json.dumps(chat, allow_nan=False)
        assert estimate_input_tokens(body) > 0
        assert isinstance(scoring_text(body["messages"], body.get("system")), str)
    assert outcomes["valid"] > 300 and outcomes["invalid"] > 1000, outcomes
