"""The Anthropic Messages API through the real proxy, with the official `anthropic` SDK.

The cheap tier speaks OpenAI (the request is translated both ways); the frontier tier is an
`anthropic/...` model whose `api_base` is the fake (the request passes through natively).
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy
from tests.sdk import anthropic_client

KEY = "sk-messages-test"
ADMIN = "sk-admin-test"
TOOLS: list[Any] = [
    {
        "name": "search",
        "description": "Search the web",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
    }
]


@pytest.fixture(scope="module")
def proxy(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    policy = write_policy(
        tmp_path_factory.mktemp("messages") / "policy.yaml",
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
        access={"open": False, "keys_env": "TEST_KEYS", "admin_keys_env": "TEST_ADMIN_KEYS"},
    )
    env = {"TEST_ANTHROPIC_KEY": "fake-key", "TEST_KEYS": KEY, "TEST_ADMIN_KEYS": ADMIN}
    return start_proxy(policy, env=env)


@pytest.fixture(scope="module")
def client(proxy: ServerProcess) -> anthropic.Anthropic:
    return anthropic_client(base_url=proxy.url, api_key=KEY, max_retries=0)


def _last_body(fake: ServerProcess) -> dict[str, Any]:
    body = httpx.get(f"{fake.url}/_stats").json()["last_body"]
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize(("tier", "model"), [("cheap", "cheap-model"), ("frontier", "claude-test")])
def test_plain(client: anthropic.Anthropic, tier: str, model: str) -> None:
    raw = client.messages.with_raw_response.create(
        model=tier, max_tokens=64, messages=[{"role": "user", "content": "hi [[chunks:3]]"}]
    )
    assert raw.headers["x-tierwise-tier"] == tier
    assert raw.headers["x-tierwise-reason"] == "pinned"
    for name in ("x-tierwise-model", "x-tierwise-difficulty", "x-tierwise-request-id"):
        assert raw.headers[name]
    assert float(raw.headers["x-tierwise-cost-usd"]) > 0
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == f"w0 w1 from-fake:{model}"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 3 and message.usage.input_tokens > 0
    if tier == "frontier":  # passed through untouched
        assert message.id == "msg_fake" and message.model == "claude-test"
    else:
        assert message.id.startswith("msg_") and message.model == "cheap"


@pytest.mark.parametrize(("tier", "model"), [("cheap", "cheap-model"), ("frontier", "claude-test")])
def test_streamed(client: anthropic.Anthropic, tier: str, model: str) -> None:
    with client.messages.stream(
        model=tier, max_tokens=64, messages=[{"role": "user", "content": "hi [[chunks:4]]"}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    raw = [k for k in kinds if k not in ("text", "ping")]  # "text" is the SDK's own helper event
    assert raw[0] == "message_start"
    assert raw[1] == "content_block_start"
    assert raw[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(raw[2:-3]) == {"content_block_delta"}
    assert final.content[0].type == "text"
    assert final.content[0].text == f"w0 w1 w2 from-fake:{model}"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4 and final.usage.input_tokens > 0


@pytest.mark.parametrize("tier", ["cheap", "frontier"])
def test_tool_use_round_trip(
    client: anthropic.Anthropic, fake_upstream: ServerProcess, tier: str
) -> None:
    question: Any = {"role": "user", "content": "search for cats"}
    first = client.messages.create(model=tier, max_tokens=64, tools=TOOLS, messages=[question])
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "search" and call.input == {"query": "fake"}
    second = client.messages.create(
        model=tier,
        max_tokens=64,
        tools=TOOLS,
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "cats!"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    sent = _last_body(fake_upstream)
    if tier == "cheap":
        assert sent["tools"][0]["function"]["name"] == "search"
        assert sent["messages"][-2]["tool_calls"][0]["id"] == call.id
        assert sent["messages"][-1] == {
            "role": "tool",
            "tool_call_id": call.id,
            "content": "cats!",
        }
    else:
        assert sent["messages"][-1]["content"][0]["tool_use_id"] == call.id
        assert sent["tools"] == TOOLS


@pytest.mark.parametrize("tier", ["cheap", "frontier"])
def test_streamed_tool_use(client: anthropic.Anthropic, tier: str) -> None:
    with client.messages.stream(
        model=tier,
        max_tokens=64,
        tools=TOOLS,
        messages=[{"role": "user", "content": "search for cats"}],
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds  # the SDK's event for input_json_delta
    assert final.stop_reason == "tool_use"
    call = final.content[-1]
    assert call.type == "tool_use" and call.name == "search" and call.input == {"query": "fake"}


def test_system_blocks_stop_sequences_metadata(
    client: anthropic.Anthropic, fake_upstream: ServerProcess
) -> None:
    kwargs: dict[str, Any] = {
        "max_tokens": 32,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        "stop_sequences": ["\n\nHuman:"],
        "metadata": {"user_id": "user-42"},
        # this SDK version has no sampling arguments; older ones send them the same way
        "extra_body": {"temperature": 0.2, "top_p": 0.9, "top_k": 5},
    }
    client.messages.create(model="cheap", **kwargs)
    sent = _last_body(fake_upstream)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief.\n\nBe kind."}
    assert sent["messages"][1] == {"role": "user", "content": "hello"}
    assert sent["stop"] == ["\n\nHuman:"]
    assert sent["user"] == "user-42"
    assert (sent["temperature"], sent["top_p"], sent["top_k"]) == (0.2, 0.9, 5)
    assert sent["max_tokens"] == 32 and sent["model"] == "cheap-model"

    client.messages.create(model="frontier", **kwargs)
    sent = _last_body(fake_upstream)
    assert sent["system"] == kwargs["system"] and sent["metadata"] == kwargs["metadata"]
    assert sent["stop_sequences"] == kwargs["stop_sequences"] and sent["model"] == "claude-test"


def _error(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert body["type"] == "error"
    assert isinstance(body["error"]["message"], str)
    error = body["error"]
    assert isinstance(error, dict)
    return error


def test_errors(proxy: ServerProcess) -> None:
    hello: Any = [{"role": "user", "content": "hello"}]
    bad = anthropic_client(base_url=proxy.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as auth:
        bad.messages.create(model="auto", max_tokens=8, messages=hello)
    assert _error(auth.value)["type"] == "authentication_error"

    good = anthropic_client(base_url=proxy.url, api_key=KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as missing:
        good.messages.create(model="no-such-model", max_tokens=8, messages=hello)
    assert _error(missing.value)["type"] == "not_found_error"

    with pytest.raises(anthropic.InternalServerError) as failed:
        good.messages.create(
            model="cheap", max_tokens=8, messages=[{"role": "user", "content": "[[status:500]]"}]
        )
    assert failed.value.status_code == 502
    assert _error(failed.value)["type"] == "api_error"

    answer = httpx.post(
        f"{proxy.url}/v1/messages",
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        json={"model": "auto", "messages": hello},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and "max_tokens" in error["message"]


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model="auto",
        system="You are terse.",
        messages=[{"role": "user", "content": "How many tokens is this sentence, roughly?"}],
        tools=TOOLS,
    )
    assert 10 < counted.input_tokens < 200


def test_request_log_and_spend(client: anthropic.Anthropic, proxy: ServerProcess) -> None:
    raw = client.messages.with_raw_response.create(
        model="frontier", max_tokens=16, messages=[{"role": "user", "content": "log me"}]
    )
    rid = raw.headers["x-tierwise-request-id"]
    cost = float(raw.headers["x-tierwise-cost-usd"])
    assert cost > 0
    log = httpx.get(
        f"{proxy.url}/admin/requests", headers={"authorization": f"Bearer {ADMIN}"}
    ).json()
    record = next(r for r in log["requests"] if r["request_id"] == rid)
    assert record["tier"] == "frontier" and record["status"] == 200
    assert record["completion_tokens"] == 5 and record["cost_micros"] == round(cost * 1e6)


def test_fallback_crosses_wire_formats(client: anthropic.Anthropic) -> None:
    """The cheap (translated) tier fails with a 5xx: the frontier (native) answers (`auto`:
    pinned requests do not fall back by default)."""
    hello: Any = [{"role": "user", "content": "hi [[status:500@cheap-model]] [[chunks:2]]"}]
    raw = client.messages.with_raw_response.create(model="auto", max_tokens=16, messages=hello)
    assert raw.headers["x-tierwise-tier"] == "frontier"
    assert raw.headers["x-tierwise-fallback"] == "cheap:error;cause=HTTP 500"
    block = raw.parse().content[0]
    assert block.type == "text" and block.text == "w0 from-fake:claude-test"
    with client.messages.stream(model="auto", max_tokens=16, messages=hello) as stream:
        final = stream.get_final_message()
    assert final.id == "msg_fake" and final.usage.output_tokens == 2


@pytest.mark.parametrize("tier", ["cheap", "frontier"])
def test_upstream_4xx_keeps_status_in_anthropic_shape(
    client: anthropic.Anthropic, tier: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model=tier, max_tokens=8, messages=[{"role": "user", "content": "[[status:400]]"}]
        )
    error = _error(refused.value)
    assert error == {"type": "invalid_request_error", "message": "fake 400"}
