"""A local tier's default output cap (`max_output_tokens`): sent upstream as `max_tokens` when
the client set none, never lowering a client's own value, and not carried to another tier on a
fallback. Real proxy, fake upstream processes, the `openai` and `anthropic` SDKs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from policies import default_policy_path, load_policy
from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy
from tests.sdk import anthropic_client, openai_client

README = Path(__file__).resolve().parents[2] / "README.md"


def _last_body(server: ServerProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/_stats").json()["last_body"]
    return body


def test_local_tier_gets_its_output_cap_when_the_client_sets_none(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    policy = write_policy(
        tmp_path / "p.yaml",
        fake_upstream.url,
        tiers={
            "cheap": {
                "model": "openai/cheap-model",
                "api_base": f"{cheap_server.url}/v1",
                "local": True,
                "max_output_tokens": 7,
                "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.1},
            },
            "frontier": {
                "model": "openai/frontier-model",
                "api_base": f"{fake_upstream.url}/v1",
                "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
            },
        },
    )
    proxy = start_proxy(policy)  # no budgets: nothing else would set max_tokens
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    hello: Any = [{"role": "user", "content": "hi"}]

    client.chat.completions.create(model="cheap", messages=hello)
    assert _last_body(cheap_server)["max_tokens"] == 7
    stream = client.chat.completions.create(
        model="cheap",
        messages=hello,
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert _last_body(cheap_server)["max_tokens"] == 7

    client.chat.completions.create(model="cheap", messages=hello, max_tokens=100)
    assert _last_body(cheap_server)["max_tokens"] == 100  # the client's own value is kept
    client.chat.completions.create(
        model="cheap",
        messages=hello,
        max_completion_tokens=50,
    )
    body = _last_body(cheap_server)
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body

    client.chat.completions.create(model="frontier", messages=hello)
    assert "max_tokens" not in _last_body(fake_upstream)  # not a local tier

    failing: Any = [{"role": "user", "content": "hi [[status:500@cheap-model]]"}]
    reply = client.chat.completions.with_raw_response.create(model="auto", messages=failing)
    assert reply.headers["x-tierwise-tier"] == "frontier"
    assert "max_tokens" not in _last_body(fake_upstream)  # the cheap cap stayed on the cheap tier

    messages = anthropic_client(base_url=proxy.url, api_key="k", max_retries=0)
    messages.messages.create(
        model="cheap", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
    )
    assert _last_body(cheap_server)["max_tokens"] == 9


def test_the_embedded_default_caps_its_local_model_at_512_and_the_readme_says_so() -> None:
    policy = load_policy(default_policy_path())
    cheap = policy.tiers[policy.routing.cheap_tier]
    assert cheap.local and cheap.max_output_tokens == 512
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "`max_output_tokens`" in text and "512" in text
    assert "never lowers a client's own `max_tokens`" in text
