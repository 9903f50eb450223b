"""Hostile and malformed input through the real proxy, driven by the official SDKs (raw httpx only
for bodies an SDK cannot produce): each is a 400 naming the problem, never a 500, and the
upstream never sees it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx
import openai
import pytest

from router.server.body import MAX_JSON_DEPTH
from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy
from tests.sdk import anthropic_client, openai_client

USER: list[Any] = [{"role": "user", "content": "hi"}]
TOO_DEEP = f"nested too deeply: more than {MAX_JSON_DEPTH} levels"


@pytest.fixture(scope="module")
def proxy(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    policy = write_policy(tmp_path_factory.mktemp("hostile") / "policy.yaml", fake_upstream.url)
    return start_proxy(policy)


@pytest.fixture(scope="module")
def client(proxy: ServerProcess) -> openai.OpenAI:
    return openai_client(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)


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


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _raw_deep(prefix: str, depth: int, suffix: str = "}") -> bytes:
    return (prefix + "[" * depth + "]" * depth + suffix).encode()


def _log_is_clean(proxy: ServerProcess) -> None:
    assert proxy.log is not None
    log = proxy.log.read_text(errors="replace")
    assert "RecursionError" not in log and "Traceback" not in log


# -- item 1: deeply nested JSON -------------------------------------------------------------------


def test_deep_nesting_from_the_openai_sdk_is_400(
    client: openai.OpenAI, fake_upstream: ServerProcess
) -> None:
    # deep enough to pass the SDK's own encoder, deeper than the proxy allows
    with _upstream_untouched(fake_upstream), pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="auto", messages=USER, extra_body={"metadata_blob": _nested(400)}
        )
    assert caught.value.status_code == 400
    error = caught.value.response.json()["error"]
    assert TOO_DEEP in error["message"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_request")


def test_deep_nesting_from_the_anthropic_sdk_is_400(
    claude: anthropic.Anthropic, fake_upstream: ServerProcess
) -> None:
    with _upstream_untouched(fake_upstream):
        with pytest.raises(anthropic.BadRequestError) as created:
            claude.messages.create(
                model="cheap", max_tokens=16, messages=[{"role": "user", "content": "hi"}],
                extra_body={"metadata_blob": _nested(400)},
            )  # fmt: skip
        with pytest.raises(anthropic.BadRequestError) as counted:
            claude.messages.count_tokens(
                model="cheap", messages=[{"role": "user", "content": "hi"}],
                extra_body={"metadata_blob": _nested(400)},
            )  # fmt: skip
    for caught in (created, counted):
        body = caught.value.response.json()
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert TOO_DEEP in body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/v1/chat/completions", '{"model": "auto", "messages": [{"role": "user", "content": "x"'
         '}], "x": '),
        ("/v1/messages", '{"model": "cheap", "max_tokens": 8, "messages": '),
        ("/v1/messages/count_tokens", '{"model": "cheap", "messages": '),
    ],
)  # fmt: skip
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 200_000])
def test_deep_nesting_beyond_any_sdk_is_400_on_every_endpoint(
    proxy: ServerProcess, fake_upstream: ServerProcess, path: str, prefix: str, depth: int
) -> None:
    with _upstream_untouched(fake_upstream):
        response = httpx.post(
            proxy.url + path,
            content=_raw_deep(prefix, depth),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400, response.text
    body = response.json()
    message = body["error"]["message"]
    assert TOO_DEEP in message
    assert body.get("type") == ("error" if path.startswith("/v1/messages") else None)
    _log_is_clean(proxy)


def test_nesting_at_the_limit_still_works(
    client: openai.OpenAI, fake_upstream: ServerProcess
) -> None:
    # the body itself adds one level ({...}), so the blob may have MAX_JSON_DEPTH - 1
    reply = client.chat.completions.create(
        model="cheap", messages=USER, extra_body={"metadata_blob": _nested(MAX_JSON_DEPTH - 1)}
    )
    assert reply.choices[0].message.content
    assert _stats(fake_upstream)["last_body"]["metadata_blob"] == _nested(MAX_JSON_DEPTH - 1)


# -- item 7: the chat-completions fields the proxy relies on ---------------------------------------


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content must be a string"),
        (
            {"messages": [{"role": "user", "content": {"text": "hi"}}]},
            "messages[0].content must be a string or a list of content parts, not an object",
        ),
        ({"messages": [{"role": "user", "content": [1, 2]}]}, "messages[0].content[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages[0].content[0].text must be a string",
        ),
        (
            {"messages": [*USER, {"role": "user", "content": None}]},
            "messages[1].content is required for role 'user'",
        ),
        ({"max_tokens": "lots"}, "'max_tokens' must be a positive integer, not a string"),
        ({"max_tokens": -5}, "'max_tokens' must be a positive integer, not -5"),
        ({"max_completion_tokens": 0}, "'max_completion_tokens' must be a positive integer"),
        ({"n": 0}, "'n' must be a positive integer, not 0"),
        ({"n": "two"}, "'n' must be a positive integer, not a string"),
        ({"response_format": "json"}, "'response_format' must be an object"),
    ],
)
def test_invalid_chat_fields_are_openai_shaped_400s(
    client: openai.OpenAI, fake_upstream: ServerProcess, fields: dict[str, Any], needle: str
) -> None:
    kwargs: dict[str, Any] = {"model": "auto", "messages": USER, **fields}
    with _upstream_untouched(fake_upstream), pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**kwargs)
    assert caught.value.status_code == 400
    error = caught.value.response.json()["error"]
    assert needle in error["message"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_request")
    assert caught.value.response.headers["x-tierwise-request-id"]


@pytest.mark.parametrize("stream", ["yes", 1, {"on": True}])
def test_non_boolean_stream_is_400(
    client: openai.OpenAI, fake_upstream: ServerProcess, stream: Any
) -> None:
    with _upstream_untouched(fake_upstream), pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="auto", messages=USER, extra_body={"stream": stream})
    assert "'stream' must be a boolean" in caught.value.response.json()["error"]["message"]


def test_bodies_no_sdk_sends_are_400(proxy: ServerProcess, fake_upstream: ServerProcess) -> None:
    url = f"{proxy.url}/v1/chat/completions"
    cases = [
        (b'{"model": "auto", "messages": [7]}', "messages[0] must be an object, not a number"),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": ["a", "b"]}]}',
            "messages[0].content[0] must be a content part",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2.5}',
            "'max_tokens' must be a positive integer, not a number",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "n": true}',
            "'n' must be a positive integer, not a boolean",
        ),
    ]
    for raw, needle in cases:
        with _upstream_untouched(fake_upstream):
            response = httpx.post(url, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 400, raw
        assert needle in response.json()["error"]["message"]


def test_valid_shapes_and_unknown_fields_pass_through(
    client: openai.OpenAI, fake_upstream: ServerProcess
) -> None:
    messages: list[Any] = [
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "user", "content": "thanks"},
    ]  # fmt: skip
    reply = client.chat.completions.create(
        model="cheap",
        messages=messages,
        max_completion_tokens=20,
        n=2,
        extra_body={"stream": None, "max_tokens": None, "vendor_knob": {"deep": [1, [2]]}},
    )
    assert len(reply.choices) == 2
    body = _stats(fake_upstream)["last_body"]
    assert body["messages"] == messages
    assert body["max_completion_tokens"] == 20 and body["n"] == 2
    assert body["vendor_knob"] == {"deep": [1, [2]]}


# -- too many messages ----------------------------------------------------------------------------


def test_too_many_messages_are_refused_before_anything_reads_them(
    client: openai.OpenAI, claude: anthropic.Anthropic, fake_upstream: ServerProcess
) -> None:
    from router.server.body import MAX_MESSAGES

    many = [{"role": "user", "content": "hi"}] * (MAX_MESSAGES + 1)
    with _upstream_untouched(fake_upstream):
        with pytest.raises(openai.BadRequestError) as chat:
            client.chat.completions.create(model="auto", messages=many)  # type: ignore[arg-type]
        with pytest.raises(anthropic.BadRequestError) as messages:
            claude.messages.create(model="cheap", max_tokens=16, messages=many)  # type: ignore[arg-type]
    assert f"at most {MAX_MESSAGES}" in chat.value.response.json()["error"]["message"]
    assert f"at most {MAX_MESSAGES}" in messages.value.response.json()["error"]["message"]
    at_limit = [{"role": "user", "content": "hi"}] * MAX_MESSAGES
    assert client.chat.completions.create(model="cheap", messages=at_limit).choices  # type: ignore[arg-type]
