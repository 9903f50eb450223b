"""`tierwise serve --log-format json`: every line the process writes to stderr is one JSON
object, and each request writes one decision line with its fields; prompts only when the policy
keeps them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.conftest import write_policy


def _lines(log: Path) -> list[dict[str, Any]]:
    text = log.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("keep_prompts", [False, True])
def test_json_logs_have_one_decision_line_per_request(
    keep_prompts: bool, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "p.yaml", fake_upstream.url, logging={"prompts": keep_prompts})
    port = free_port()
    log = tmp_path / "proxy.log"
    command = proxy_command(policy, port, "--log-format", "json")
    with ServerProcess(command, port, env={"TIERWISE_LEDGER_URL": "memory://"}, log=log) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0)
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": "a secret prompt"}]
            )
        finally:
            client.close()
        rid = raw.headers["x-tierwise-request-id"]
        deadline = time.monotonic() + 5
        while rid not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    lines = _lines(log)  # every line parses: start-up notes and uvicorn's lines too
    assert any("listening on" in line["message"] for line in lines)
    [decision] = [line["decision"] for line in lines if line["logger"] == "tierwise.decisions"]
    assert decision["request_id"] == rid and decision["status"] == 200
    assert decision["tier"] == raw.headers["x-tierwise-tier"]
    assert decision["difficulty"] == pytest.approx(
        float(raw.headers["x-tierwise-difficulty"]), abs=1e-4
    )
    for field in (
        "caller",
        "team",
        "model",
        "threshold",
        "reason",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_ms",
        "stream",
    ):
        assert field in decision
    assert decision["completion_tokens"] > 0 and decision["cost_usd"] > 0
    assert ("prompt" in decision) is keep_prompts
    assert ("a secret prompt" in log.read_text()) is keep_prompts
