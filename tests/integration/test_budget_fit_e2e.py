"""Budget refusals that say what they mean, `fit_max_tokens`, and alerts in order, end to end:
real proxy processes, the real fake upstream and alert receiver processes, the official
`openai` and `anthropic` SDKs (issue 14, item 4).

Prices: output 1000 USD per million tokens (1000 micro-USD a token), input free, so a request's
worst case is exactly `max_tokens` x $0.001 and a minimal request (16 tokens) costs $0.016."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from router.testing.processes import ServerProcess
from tests.conftest import StartProxy
from tests.integration.test_alerts_e2e import hook, received, receiver
from tests.integration.test_budgets_e2e import ADMIN, budget_policy, settled
from tests.sdk import anthropic_client, openai_client

__all__ = ["receiver"]  # the fixture, imported


def chat(url: str, max_tokens: int, content: str = "hi", **extra: Any) -> Any:
    client = openai_client(base_url=f"{url}/v1", api_key="k", max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="frontier",
        max_tokens=max_tokens,
        messages=[{"role": "user", "content": content}],
        **extra,
    )


def refusal(url: str, max_tokens: int) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        chat(url, max_tokens)
    return caught.value


def upstream_got(fake: ServerProcess) -> dict[str, Any]:
    body = httpx.get(f"{fake.url}/_stats").json()["last_body"]
    assert isinstance(body, dict)
    return body


def test_a_request_too_big_for_what_is_left_is_told_so_and_fires_no_alert(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    receiver: ServerProcess,
    tmp_path: Path,
) -> None:
    policy = budget_policy(tmp_path / "p.yaml", fake_upstream.url, 0.05, alerts=[hook(receiver)])
    proxy = start_proxy(policy, env=ADMIN)
    error = refusal(proxy.url, 70)  # needs up to $0.07 of the $0.05
    assert error.status_code == 429
    body = error.response.json()["error"]
    assert body["type"] == "budget_exceeded" and body["code"] == "budget_insufficient"
    assert body["message"].startswith(
        "request needs up to $0.07, $0.05 left of budget 'global-day' (all, window "
    )
    assert "lower max_tokens" in body["message"] and "exhausted" not in body["message"]
    ok = chat(proxy.url, 5)  # the budget was not exhausted: a smaller request is served
    assert ok.headers["x-tierwise-tier"] == "frontier" and "x-tierwise-max-tokens" not in ok.headers
    assert upstream_got(fake_upstream)["max_tokens"] == 5
    settled(proxy.url)
    time.sleep(1.0)  # room for a (wrong) alert to arrive
    assert received(receiver) == []


def test_fit_max_tokens_sends_a_smaller_max_tokens_upstream(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    policy = budget_policy(
        tmp_path / "p.yaml", fake_upstream.url, 0.05, budget={"fit_max_tokens": True}
    )
    proxy = start_proxy(policy, env=ADMIN)
    first = chat(proxy.url, 70, "hi [[chunks:30]]")
    assert first.headers["x-tierwise-max-tokens"] == "50"  # what $0.05 pays for
    assert first.headers["x-tierwise-tier"] == "frontier"
    assert first.headers["x-tierwise-reason"] == "pinned"
    assert upstream_got(fake_upstream)["max_tokens"] == 50
    assert first.headers["x-tierwise-cost-usd"] == "0.030000"
    assert settled(proxy.url)["spent_usd"] == pytest.approx(0.03)
    # a stream, and max_completion_tokens: lowered the same way, under the name it came with
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="frontier",
        max_completion_tokens=500,
        stream=True,
        messages=[{"role": "user", "content": "hi [[chunks:4]]"}],
    ) as stream:
        assert stream.headers["x-tierwise-max-tokens"] == "20"
        assert "".join(stream.iter_lines())
    sent = upstream_got(fake_upstream)
    assert sent["max_completion_tokens"] == 20 and "max_tokens" not in sent
    row = settled(proxy.url)
    assert (
        row["spent_usd"] == pytest.approx(0.034) and row["spent_usd"] <= 0.05
    )  # within the budget
    last = chat(proxy.url, 70, "hi [[chunks:16]]")  # $0.016 left: exactly the floor of 16
    assert last.headers["x-tierwise-max-tokens"] == "16"
    assert settled(proxy.url)["spent_usd"] == pytest.approx(0.05)
    error = refusal(proxy.url, 70)  # nothing left: now it is exhausted
    assert error.response.json()["error"]["code"] == "budget_exhausted"
    assert "is exhausted: spent $0.0500 of $0.05" in error.response.json()["error"]["message"]


def test_fit_max_tokens_on_a_native_anthropic_tier(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    policy = budget_policy(
        tmp_path / "p.yaml", fake_upstream.url, 0.05, budget={"fit_max_tokens": True}
    )
    data = yaml.safe_load(policy.read_text())
    data["tiers"]["frontier"] |= {
        "model": "anthropic/claude-f",
        "api_base": fake_upstream.url,
        "api_key_env": "FAKE_ANTHROPIC",
    }
    policy.write_text(yaml.safe_dump(data))
    proxy = start_proxy(policy, env={"FAKE_ANTHROPIC": "fake-key", **ADMIN})
    client = anthropic_client(base_url=proxy.url, api_key="k", max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="frontier", max_tokens=300, messages=[{"role": "user", "content": "hi [[chunks:3]]"}]
    )
    assert raw.headers["x-tierwise-max-tokens"] == "50"
    sent = upstream_got(fake_upstream)
    assert sent["model"] == "claude-f" and sent["max_tokens"] == 50  # the client's own body
    assert raw.parse().usage.output_tokens == 3


def test_cheap_only_alerts_fire_in_order_on_spent_money(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    receiver: ServerProcess,
    tmp_path: Path,
) -> None:
    """The issue's day: a $0.30 `cheap_only` budget used to fire "exhausted" at $0.125, before
    50 %, and never 80 %."""
    policy = budget_policy(
        tmp_path / "p.yaml",
        fake_upstream.url,
        0.30,
        budget={"on_exhausted": "cheap_only"},
        alerts=[hook(receiver)],
    )
    proxy = start_proxy(policy, env=ADMIN)
    steps = [  # (max_tokens, tokens answered, tier, reason, spent after)
        (200, 125, "frontier", "pinned", 0.125),
        (200, 5, "cheap", "budget_insufficient:global-day", 0.125),  # needs $0.20 of $0.175
        (60, 60, "frontier", "pinned", 0.185),  # 50 %
        (60, 60, "frontier", "pinned", 0.245),  # 80 %
        (60, 5, "cheap", "budget_insufficient:global-day", 0.245),
        (50, 50, "frontier", "pinned", 0.295),  # $0.005 left < a minimal $0.016: exhausted
        (10, 5, "cheap", "budget_exhausted:global-day", 0.295),
    ]
    seen = []
    for max_tokens, answered, tier, reason, spent in steps:
        r = chat(proxy.url, max_tokens, f"hi [[chunks:{answered}]]")
        assert (r.headers["x-tierwise-tier"], r.headers["x-tierwise-reason"]) == (tier, reason)
        assert settled(proxy.url)["spent_usd"] == pytest.approx(spent)
        time.sleep(0.3)  # let the settlement's alert check deliver
        seen.append([(a["kind"], a["threshold"]) for a in received(receiver)])
    assert seen[1] == []  # no "exhausted" for a request that was merely too big
    assert seen[2] == [("threshold", 0.5)]
    assert seen[4] == [("threshold", 0.5), ("threshold", 0.8)]
    assert seen[-1] == [("threshold", 0.5), ("threshold", 0.8), ("exhausted", 1.0)]
    exhausted = received(receiver)[-1]
    assert exhausted["spent_usd"] == pytest.approx(0.295)
    assert exhausted["details"]["action"] == "downgraded"
    assert "cannot pay for a minimal request ($0.0160)" in exhausted["text"]
