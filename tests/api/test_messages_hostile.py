"""Hostile and malformed Messages API bodies through the real proxy: each is an Anthropic-shaped
400 naming the field (`{"type": "error", "error": {"type": "invalid_request_error", ...}}`),
never a 500 and never a silent drop, and the upstream never sees it. Driven by the official
`anthropic` SDK where it can send the body, raw httpx otherwise; the cases are the unit tests'
table (`tests/unit/test_anthropic_translate.py`), the cheap tier translated, the frontier tier
native (validation comes before either)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx
import pytest

from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy
from tests.sdk import anthropic_client
from tests.unit.test_anthropic_translate import INVALID, mutate, rich_body

USER: list[Any] = [{"role": "user", "content": "hi"}]
SDK_CANNOT_SEND = ("max_tokens", "nan")  # the SDK computes a timeout from max_tokens; NaN: raw
SDK_PARAMS = (
    "model",
    "max_tokens",
    "messages",
    "metadata",
    "stop_sequences",
    "system",
    "tool_choice",
    "tools",
)  # the rest (temperature, top_p, top_k) go in extra_body


def _sdk(body: dict[str, Any]) -> dict[str, Any]:
    """`messages.create` keyword arguments sending exactly `body`."""
    kwargs = {key: value for key, value in body.items() if key in SDK_PARAMS}
    extra = {key: value for key, value in body.items() if key not in SDK_PARAMS}
    return kwargs | {"extra_body": extra} if extra else kwargs


@pytest.fixture(scope="module")
def proxy(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    policy = write_policy(
        tmp_path_factory.mktemp("messages_hostile") / "policy.yaml",
        fake_upstream.url,
        tiers={
            "cheap": {
                "model": "openai/cheap-model",
                "api_base": f"{fake_upstream.url}/v1",
                "local": True,
                "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.1},
            },
            "frontier": {
                "model": "anthropic/claude-test",
                "api_base": fake_upstream.url,
                "api_key_env": "TEST_ANTHROPIC_KEY",
                "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
            },
        },
    )
    return start_proxy(policy, env={"TEST_ANTHROPIC_KEY": "fake-key"})


@pytest.fixture(scope="module")
def claude(proxy: ServerProcess) -> anthropic.Anthropic:
    return anthropic_client(base_url=proxy.url, api_key="unused", max_retries=0)


def _stats(upstream: ServerProcess) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{upstream.url}/_stats").json()
    return stats


@contextmanager
def _upstream_untouched(upstream: ServerProcess) -> Iterator[None]:
    before = _stats(upstream)["requests"]
    yield
    assert _stats(upstream)["requests"] == before, "the invalid request reached the upstream"


def _log_is_clean(proxy: ServerProcess) -> None:
    assert proxy.log is not None
    log = proxy.log.read_text(errors="replace")
    assert "Traceback" not in log
    assert not re.search(r"request [0-9a-f]+ failed|count_tokens failed", log)  # log.exception


def _anthropic_400(response: Any) -> str:  # an httpx response (the SDK has its own httpx)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    message: str = body["error"]["message"]
    return message


def _post(proxy: ServerProcess, path: str, raw: bytes) -> httpx.Response:
    return httpx.post(
        proxy.url + path, content=raw, headers={"content-type": "application/json"}, timeout=30
    )


def _sdk_cases() -> list[Any]:
    cases = []
    for i, (body, needle) in enumerate(INVALID):
        if any(word in needle for word in SDK_CANNOT_SEND):
            continue
        model = "cheap" if i % 2 else "frontier"
        cases.append(pytest.param(body | {"model": model}, needle, id=needle[:60]))
    return cases


@pytest.mark.parametrize(("body", "needle"), _sdk_cases())
def test_invalid_bodies_from_the_sdk_are_anthropic_400s(
    claude: anthropic.Anthropic,
    proxy: ServerProcess,
    fake_upstream: ServerProcess,
    body: dict[str, Any],
    needle: str,
) -> None:
    with _upstream_untouched(fake_upstream), pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(**_sdk(body))
    assert caught.value.status_code == 400
    assert needle in _anthropic_400(caught.value.response)
    assert caught.value.response.headers["x-tierwise-request-id"]
    _log_is_clean(proxy)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ([1, 2], "messages.0.content.0: must be a content block"),
        (["hello", "world"], "messages.0.content.0: must be a content block"),
        ([{"type": "text", "text": "hi"}, 3], "messages.0.content.1: must be a content block"),
        (
            [{"type": "image", "source": "https://x.test/a.png"}],
            "messages.0.content.0.source: must be an object, not a string",
        ),
    ],
)
def test_the_known_drops_and_500s_are_400s_on_both_endpoints(
    claude: anthropic.Anthropic,
    proxy: ServerProcess,
    fake_upstream: ServerProcess,
    content: Any,
    needle: str,
) -> None:
    # before: a list of numbers or strings was dropped (an empty conversation went upstream), an
    # image whose source is a string was an AttributeError (a 500 with a traceback in the log)
    messages: Any = [{"role": "user", "content": content}]
    with _upstream_untouched(fake_upstream):
        with pytest.raises(anthropic.BadRequestError) as created:
            claude.messages.create(model="cheap", max_tokens=16, messages=messages)
        with pytest.raises(anthropic.BadRequestError) as counted:
            claude.messages.count_tokens(model="cheap", messages=messages)
    for caught in (created, counted):
        assert needle in _anthropic_400(caught.value.response)
    _log_is_clean(proxy)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"system": 42}, "system: must be a string or a list of text blocks, not a number"),
        ({"tools": 5}, "tools: must be a list of tool definitions, not a number"),
        ({"tool_choice": "auto"}, "tool_choice: must be an object"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t",
                                                        "name": "f", "input": {}}]}]},
            "'tool_use' blocks cannot be in a user message",
        ),
    ],
)  # fmt: skip
def test_count_tokens_checks_the_shapes_too(
    claude: anthropic.Anthropic, proxy: ServerProcess, fields: dict[str, Any], needle: str
) -> None:
    kwargs: dict[str, Any] = {"model": "cheap", "messages": USER, **fields}
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.count_tokens(**kwargs)
    assert needle in _anthropic_400(caught.value.response)
    _log_is_clean(proxy)


RAW: list[tuple[bytes, str]] = [
    (b"[]", "request body must be a JSON object"),
    (b'"hi"', "request body must be a JSON object"),
    (b'{"model": "cheap", "max_tokens": 8, "messages": {"role": "user"}}', "messages: Field"),
    (b'{"model": "cheap", "max_tokens": 8, "messages": [7]}', "messages.0: must be an object"),
    (b'{"model": 5, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}', "model:"),
    (b'{"model": "cheap", "messages": [{"role": "user", "content": "x"}]}',
     "max_tokens: Field required"),
    (b'{"model": "cheap", "max_tokens": "8", "messages": [{"role": "user", "content": "x"}]}',
     "max_tokens: must be a positive integer, not a string"),
    (b'{"model": "cheap", "max_tokens": 2.5, "messages": [{"role": "user", "content": "x"}]}',
     "max_tokens: must be a positive integer, not a number"),
    (b'{"model": "cheap", "max_tokens": true, "messages": [{"role": "user", "content": "x"}]}',
     "max_tokens: must be a positive integer, not a boolean"),
    (b'{"model": "cheap", "max_tokens": -3, "messages": [{"role": "user", "content": "x"}]}',
     "max_tokens: must be a positive integer, not -3"),
    (b'{"model": "cheap", "max_tokens": 8, "temperature": NaN, "messages": [{"role": "user", '
     b'"content": "x"}]}', "nan"),
    (b'{"model": "cheap", "max_tokens": 8, "top_p": Infinity, "messages": [{"role": "user", '
     b'"content": "x"}]}', "inf"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "needle"), RAW)
def test_bodies_no_sdk_sends_are_anthropic_400s(
    proxy: ServerProcess, fake_upstream: ServerProcess, raw: bytes, needle: str
) -> None:
    with _upstream_untouched(fake_upstream):
        response = _post(proxy, "/v1/messages", raw)
    # (NaN / Infinity: refused by the JSON reader or by the field check, either names it)
    assert needle.lower() in _anthropic_400(response).lower()
    _log_is_clean(proxy)


@pytest.mark.parametrize("tier", ["cheap", "frontier"])
def test_every_valid_block_type_is_served(
    claude: anthropic.Anthropic, fake_upstream: ServerProcess, tier: str
) -> None:
    body = rich_body() | {"model": tier}
    body["messages"][0]["content"].append(
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
            "title": "spec.pdf",
        }
    )
    raw = claude.messages.with_raw_response.create(**_sdk(body | {"vendor_knob": [1]}))
    assert raw.headers["x-tierwise-tier"] == tier
    assert raw.parse().content
    sent = _stats(fake_upstream)["last_body"]
    if tier == "frontier":  # native: the client's body goes through untouched, unknown fields too
        assert sent["messages"] == body["messages"] and sent["system"] == body["system"]
        assert sent["vendor_knob"] == [1]
        return
    first, _, tool, after = sent["messages"][1:]
    kinds = [part["type"] for part in first["content"]]
    assert kinds == ["text", "image_url", "image_url", "text", "text", "file"]
    assert first["content"][3]["text"] == "t\n\ndoc"
    assert tool == {"role": "tool", "tool_call_id": "t1", "content": "r"}
    assert [part["type"] for part in after["content"]] == ["image_url", "text"]


def test_random_malformed_bodies_are_400_or_200_never_5xx(
    proxy: ServerProcess, fake_upstream: ServerProcess
) -> None:
    rng = random.Random(14_2026)
    answered: dict[int, int] = {}
    served = 0
    before = _stats(fake_upstream)["requests"]
    for n in range(300):
        body: Any = rich_body() | {"model": rng.choice(["cheap", "frontier", "auto"])}
        for _ in range(rng.randint(1, 3)):
            body = mutate(body, rng)
        path = "/v1/messages/count_tokens" if n % 4 == 3 else "/v1/messages"
        response = _post(proxy, path, json.dumps(body).encode())
        answered[response.status_code] = answered.get(response.status_code, 0) + 1
        assert response.status_code in (200, 400), (body, response.text)
        if response.status_code == 400:
            assert _anthropic_400(response)
        elif path == "/v1/messages":
            served += 1
    assert _stats(fake_upstream)["requests"] - before == served, "a 400 reached the upstream"
    assert answered.get(200, 0) > 30 and answered.get(400, 0) > 100, answered
    _log_is_clean(proxy)
