"""A stream whose upstream reports no usage (llama.cpp's server ignores `include_usage`) is
billed from a safe estimate, not from its whole reservation: the prompt's token upper bound and
one completion token per streamed event, which is never below what was streamed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.conftest import write_policy


def test_a_stream_without_usage_is_billed_from_its_events(
    fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "p.yaml",
        fake_upstream.url,
        budgets=[{"scope": "global", "window": "day", "limit_usd": 100}],
        access={"open": True, "admin_keys_env": "TIERWISE_ADMIN_KEYS"},
    )
    port = free_port()
    env = {"TIERWISE_LEDGER_URL": "memory://", "TIERWISE_ADMIN_KEYS": "adm"}
    with ServerProcess(proxy_command(policy, port), port, env=env) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0)
        try:
            for text in ("[[no_usage:1]] [[chunks:6]] count", "[[chunks:6]] count"):
                chunks = list(
                    client.chat.completions.create(
                        model="frontier", stream=True, max_tokens=4000,
                        messages=[{"role": "user", "content": text}],
                    )
                )  # fmt: skip
                assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 6
        finally:
            client.close()
        time.sleep(0.5)
        records = httpx.get(
            f"{server.url}/admin/requests", headers={"authorization": "Bearer adm"}
        ).json()["requests"]
    reported, estimated = records  # newest first
    assert reported["completion_tokens"] == 6  # the fake's own count, from its usage chunk
    assert 6 <= estimated["completion_tokens"] <= 6 + 3  # + role, finish and [DONE] events
    assert estimated["prompt_tokens"] >= reported["prompt_tokens"] > 0  # an upper bound
    reservation_micros = 4000 * 15  # max_tokens at the frontier's output price, at least
    assert 0 < estimated["cost_micros"] < reservation_micros
