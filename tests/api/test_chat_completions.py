"""The real proxy process + a real fake upstream, driven by the official `openai` SDK."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy
from tests.sdk import openai_client

HARD = (
    "Prove step by step that the integral of x^2 from 0 to 1 equals 1/3, then write a python "
    "function def integrate(f, a, b) that computes it numerically, and explain why it converges."
)


@pytest.fixture(scope="module")
def proxy(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    policy = write_policy(tmp_path_factory.mktemp("p") / "policy.yaml", fake_upstream.url)
    return start_proxy(policy)


@pytest.fixture
def client(proxy: ServerProcess) -> openai.OpenAI:
    return openai_client(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)


def _stats(upstream: ServerProcess) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{upstream.url}/_stats").json()
    return stats


def test_easy_prompt_goes_to_cheap_and_hard_to_frontier(client: openai.OpenAI) -> None:
    easy = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    hard = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": HARD}]
    )
    assert easy.headers["x-tierwise-tier"] == "cheap"
    assert easy.headers["x-tierwise-model"] == "openai/cheap-model"
    assert easy.headers["x-tierwise-reason"] == "difficulty<threshold"
    assert hard.headers["x-tierwise-tier"] == "frontier"
    assert hard.headers["x-tierwise-reason"] == "difficulty>=threshold"
    assert float(hard.headers["x-tierwise-difficulty"]) > float(
        easy.headers["x-tierwise-difficulty"]
    )
    assert float(easy.headers["x-tierwise-threshold"]) == 0.5
    assert len(easy.headers["x-tierwise-request-id"]) == 32
    # the upstream really received the tier's model name, and its answer came back unchanged
    assert (easy.parse().choices[0].message.content or "").endswith("from-fake:cheap-model")
    assert (hard.parse().choices[0].message.content or "").endswith("from-fake:frontier-model")


def test_pinned_tier_and_aliases(client: openai.OpenAI) -> None:
    pinned = client.chat.completions.with_raw_response.create(
        model="frontier", messages=[{"role": "user", "content": "hi"}]
    )
    assert pinned.headers["x-tierwise-tier"] == "frontier"
    assert pinned.headers["x-tierwise-reason"] == "pinned"
    fast = client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": HARD}]
    )
    assert fast.headers["x-tierwise-tier"] == "cheap"
    auto_alias = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": HARD}]
    )
    assert auto_alias.headers["x-tierwise-tier"] == "frontier"
    assert auto_alias.headers["x-tierwise-reason"] == "difficulty>=threshold"


def test_parameters_pass_through(client: openai.OpenAI, fake_upstream: ServerProcess) -> None:
    client.chat.completions.create(
        model="cheap",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        temperature=0.3,
        max_tokens=17,
        n=2,
        stop=["END"],
        seed=42,
        response_format={"type": "json_object"},
    )
    body = _stats(fake_upstream)["last_body"]
    assert body["model"] == "cheap-model"
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 17
    assert body["n"] == 2
    assert body["stop"] == ["END"]
    assert body["seed"] == 42
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


def test_streaming_content_usage_and_headers(client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="auto",
        messages=[{"role": "user", "content": HARD + " [[chunks:12]]"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-tierwise-tier"] == "frontier"
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.split() == [f"w{i}" for i in range(11)] + ["from-fake:frontier-model"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 12
    assert usage[0].prompt_tokens == len((HARD + " [[chunks:12]]").split())


def test_tool_calls_json_and_stream(client: openai.OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": "search the web",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
            },
        }
    ]
    done = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "look this up"}],
        tools=tools,
        tool_choice="auto",
    )
    call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert done.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "search"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"query": "fake"}  # type: ignore[union-attr]
    # the round trip: send the tool result back
    follow = client.chat.completions.create(
        model="auto",
        messages=[
            {"role": "user", "content": "look this up"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "result"},
        ],
        tools=tools,
    )
    assert follow.choices[0].finish_reason == "stop"
    streamed = list(
        client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "look this up"}],
            tools=tools,
            stream=True,
        )
    )
    calls = [tc for c in streamed for tc in (c.choices[0].delta.tool_calls or []) if c.choices]
    assert calls and calls[0].function.name == "search"  # type: ignore[union-attr]


def test_models_health_and_ready(client: openai.OpenAI, proxy: ServerProcess) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "auto" and sorted(ids[1:]) == ["cheap", "fast", "frontier", "gpt-4o"]
    assert httpx.get(f"{proxy.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{proxy.url}/readyz").json()
    assert ready["status"] == "ready" and ready["tiers"] == ["cheap", "frontier"]


def _error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    assert set(body) == {"message", "type", "code"}
    assert "Traceback" not in body["message"]
    return body


def test_bad_requests_are_400(proxy: ServerProcess) -> None:
    url = f"{proxy.url}/v1/chat/completions"
    cases = [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "'model'"),
        (b'{"model": "auto"}', "'messages'"),
        (b'{"model": "auto", "messages": []}', "'messages'"),
        (b'{"model": "auto", "messages": [{"content": "hi"}]}', "messages[0].role"),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "'stream'",
        ),
    ]
    for raw, needle in cases:
        response = httpx.post(url, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 400, raw
        assert needle in _error(response)["message"]
        assert "x-tierwise-request-id" in response.headers


def test_unknown_model_is_404_with_the_known_names(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 404
    assert "auto" in str(caught.value) and "frontier" in str(caught.value)


def test_upstream_500_is_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="cheap", messages=[{"role": "user", "content": "[[status:500]]"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-tierwise-tier"] == "cheap"
    with pytest.raises(openai.InternalServerError) as streamed:
        client.chat.completions.create(
            model="cheap", messages=[{"role": "user", "content": "[[status:503]]"}], stream=True
        )
    assert streamed.value.status_code == 502


def test_upstream_4xx_passes_through(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(
            model="cheap", messages=[{"role": "user", "content": "[[status:422]]"}]
        )
    assert caught.value.status_code == 422


def test_unknown_path_is_openai_shaped_404(proxy: ServerProcess) -> None:
    response = httpx.get(f"{proxy.url}/v1/nothing")
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


def test_client_disconnect_mid_stream(proxy: ServerProcess, fake_upstream: ServerProcess) -> None:
    """Hang up after the first bytes of a slow stream: the proxy closes the upstream stream,
    keeps serving, and leaks nothing."""
    before = _stats(fake_upstream)
    body = json.dumps(
        {
            "model": "cheap",
            "stream": True,
            "messages": [{"role": "user", "content": "[[chunks:200]] [[chunk_delay:0.05]]"}],
        }
    ).encode()
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        first = sock.recv(4096)
        assert b"200 OK" in first
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = _stats(fake_upstream)
        if now["cancelled_streams"] > before["cancelled_streams"] and now["active_streams"] == 0:
            break
        time.sleep(0.1)
    assert now["cancelled_streams"] == before["cancelled_streams"] + 1
    assert now["active_streams"] == 0
    # and the proxy is fine
    ok = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "cheap", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code == 200


@pytest.fixture(scope="module")
def strict_proxy(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """Keys required, a 4 KiB body limit and a 1 s upstream timeout."""
    base = f"{fake_upstream.url}/v1"
    policy = write_policy(
        tmp_path_factory.mktemp("strict") / "policy.yaml",
        fake_upstream.url,
        tiers={
            "cheap": {
                "model": "openai/cheap-model",
                "api_base": base,
                "timeout_s": 1.0,
                "price": "free",
            },
            "frontier": {
                "model": "openai/frontier-model",
                "api_base": base,
                "timeout_s": 1.0,
                "price": "free",
            },
        },
        access={"open": False, "keys_env": "TEST_TIERWISE_KEYS"},
    )
    env = {"TEST_TIERWISE_KEYS": "key-one, key-two", "TIERWISE_MAX_BODY_BYTES": "4096"}
    return start_proxy(policy, env=env)


def test_keys_required(strict_proxy: ServerProcess) -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    bad = openai_client(base_url=f"{strict_proxy.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="auto", messages=messages)
    assert caught.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    missing = httpx.post(
        f"{strict_proxy.url}/v1/chat/completions", json={"model": "auto", "messages": messages}
    )
    assert missing.status_code == 401
    assert "missing API key" in _error(missing)["message"]
    good = openai_client(base_url=f"{strict_proxy.url}/v1", api_key="key-two", max_retries=0)
    assert good.chat.completions.create(model="auto", messages=messages).choices
    # the Anthropic-style header works too
    ok = httpx.post(
        f"{strict_proxy.url}/v1/chat/completions",
        json={"model": "auto", "messages": messages},
        headers={"x-api-key": "key-one"},
    )
    assert ok.status_code == 200


def test_body_over_limit_is_413(strict_proxy: ServerProcess) -> None:
    client = openai_client(base_url=f"{strict_proxy.url}/v1", api_key="key-one", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert caught.value.status_code == 413
    # chunked upload without Content-Length is cut off as well
    response = httpx.post(
        f"{strict_proxy.url}/v1/chat/completions",
        content=iter([b'{"model": "auto", "messages": [', b" " * 5000, b"]}"]),
        headers={"authorization": "Bearer key-one"},
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


def test_upstream_timeout_is_504_not_a_hang(strict_proxy: ServerProcess) -> None:
    client = openai_client(base_url=f"{strict_proxy.url}/v1", api_key="key-one", max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="cheap", messages=[{"role": "user", "content": "[[sleep:5]]"}]
        )
    assert caught.value.status_code == 504
    assert time.monotonic() - started < 4
    with pytest.raises(openai.APIStatusError) as streamed:
        client.chat.completions.create(
            model="cheap", messages=[{"role": "user", "content": "[[sleep:5]]"}], stream=True
        )
    assert streamed.value.status_code == 504


def test_upstream_unreachable_is_502(
    start_proxy: StartProxy, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    proxy = start_proxy(write_policy(tmp_path_factory.mktemp("dead") / "p.yaml", dead))
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 502
    message = _error(response)["message"]
    assert "tried: cheap:error, frontier:error" in message  # fell back, and said so


def test_policy_path_and_proxy_log_exist(logs_dir: Path) -> None:
    assert any(p.name.startswith("proxy_") for p in logs_dir.iterdir())
