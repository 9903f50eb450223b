"""A frontier tier that needs translation (Anthropic via litellm), through the real proxy."""

from __future__ import annotations

import openai
import pytest

from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy
from tests.sdk import openai_client


@pytest.fixture(scope="module")
def client(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> openai.OpenAI:
    policy = write_policy(
        tmp_path_factory.mktemp("anthropic") / "policy.yaml",
        fake_upstream.url,
        tiers={
            "cheap": {
                "model": "openai/cheap-model",
                "api_base": f"{fake_upstream.url}/v1",
                "price": "free",
            },
            "frontier": {
                "model": "anthropic/claude-test",
                "api_base": fake_upstream.url,
                "api_key_env": "TEST_ANTHROPIC_KEY",
                "price": "free",
            },
        },
    )
    proxy = start_proxy(policy, env={"TEST_ANTHROPIC_KEY": "fake-anthropic-key"})
    return openai_client(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)


def test_pinned_frontier_through_litellm(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="frontier", messages=[{"role": "user", "content": "hello [[chunks:3]]"}]
    )
    assert raw.headers["x-tierwise-tier"] == "frontier"
    assert raw.headers["x-tierwise-model"] == "anthropic/claude-test"
    done = raw.parse()
    assert done.choices[0].message.content == "w0 w1 from-fake:claude-test"
    assert done.usage is not None and done.usage.completion_tokens == 3


def test_streamed_frontier_through_litellm(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="frontier",
            messages=[{"role": "user", "content": "hello [[chunks:4]]"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 from-fake:claude-test"
    assert any(c.usage is not None and c.usage.completion_tokens == 4 for c in chunks)
