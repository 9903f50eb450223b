"""`GET /metrics` after real openai-SDK traffic through a real proxy: names, labels and values,
with one process and with `--workers 2` (every worker's counts added up, budgets read once
from the shared ledger, not summed)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.conftest import write_policy

ADMIN = {"authorization": "Bearer adm"}


def scrape(
    url: str, headers: dict[str, str] | None = ADMIN
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = httpx.get(f"{url}/metrics", headers=headers or {}, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            values[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return values


def value(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        v for (n, ls), v in values.items() if n == name and labels.items() <= dict(ls).items()
    )


def traffic(url: str, n: int, stream: bool = False) -> None:
    client = OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    try:
        for i in range(n):
            if stream:
                chunks = client.chat.completions.create(
                    model="cheap", stream=True, messages=[{"role": "user", "content": f"s {i}"}]
                )
                for _ in chunks:
                    pass
            else:
                client.chat.completions.create(
                    model="cheap", messages=[{"role": "user", "content": f"hello {i}"}]
                )
        client.chat.completions.create(
            model="frontier", messages=[{"role": "user", "content": "pinned"}]
        )
    finally:
        client.close()


def _policy(path: Path, upstream: str) -> Path:
    return write_policy(
        path,
        upstream,
        budgets=[{"scope": "global", "window": "day", "limit_usd": 100}],
        access={"open": True, "admin_keys_env": "TIERWISE_ADMIN_KEYS"},
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_count_the_traffic_sent(
    workers: int, fake_upstream: ServerProcess, tmp_path: Path, redis_url: str
) -> None:
    policy = _policy(tmp_path / "p.yaml", fake_upstream.url)
    port = free_port()
    env = {"TIERWISE_LEDGER_URL": redis_url, "TIERWISE_ADMIN_KEYS": "adm"}
    command = proxy_command(policy, port, "--workers", str(workers))
    with ServerProcess(command, port, env=env, log=tmp_path / "proxy.log") as server:
        refused = httpx.get(f"{server.url}/metrics")
        assert refused.status_code == 401  # metrics.auth: admin by default
        traffic(server.url, 12)
        traffic(server.url, 3, stream=True)
        deadline = time.monotonic() + 10
        while True:  # settlements and per-worker files catch up after the answers
            values = scrape(server.url)
            if value(values, "tierwise_requests_total") >= 17 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for _ in range(5):  # any worker answers with the same totals
            again = scrape(server.url)
            assert value(again, "tierwise_requests_total") == value(
                values, "tierwise_requests_total"
            )
    assert (
        value(values, "tierwise_requests_total", tier="cheap", status="200", reason="pinned") == 15
    )
    assert value(values, "tierwise_requests_total", tier="frontier", status="200") == 2
    assert value(values, "tierwise_requests_total") == 17
    assert value(values, "tierwise_tokens_total", tier="cheap", kind="completion") > 0
    cheap_cost = value(values, "tierwise_cost_usd_total", tier="cheap")
    frontier_cost = value(values, "tierwise_cost_usd_total", tier="frontier")
    assert 0 < cheap_cost < frontier_cost * 15  # 15 cheap answers at a 30x lower price
    equivalent = value(values, "tierwise_frontier_equivalent_usd_total")
    assert value(values, "tierwise_saved_usd_total") == pytest.approx(
        equivalent - cheap_cost - frontier_cost, rel=1e-6
    )
    assert value(values, "tierwise_overhead_seconds_count") == 14  # the non-streamed answers
    assert value(values, "tierwise_time_to_first_token_seconds_count", tier="cheap") == 3
    assert value(values, "tierwise_request_seconds_count") == 17
    assert value(values, "tierwise_difficulty_count") == 17
    assert value(values, "tierwise_inflight_calls", tier="cheap") == 0
    assert value(values, "tierwise_breaker_state", tier="cheap") == 0
    assert value(values, "tierwise_threshold") == 0.5
    assert value(values, "tierwise_policy_version") == 1
    spent = value(values, "tierwise_budget_spent_usd", budget="global-day")
    assert spent == pytest.approx(cheap_cost + frontier_cost, rel=1e-3)  # once, not per worker
    assert value(values, "tierwise_budget_limit_usd", budget="global-day") == 100


def test_open_metrics_need_no_key_and_report_the_model_servers_queue(
    fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "p.yaml", fake_upstream.url, metrics={"auth": "open"})
    data = yaml.safe_load(policy.read_text())
    data["tiers"]["cheap"] |= {"engine": "vllm", "metrics_url": f"{fake_upstream.url}/metrics"}
    policy.write_text(yaml.safe_dump(data))
    port = free_port()
    env = {"TIERWISE_LEDGER_URL": "memory://"}
    with ServerProcess(proxy_command(policy, port), port, env=env) as server:
        traffic(server.url, 1)
        time.sleep(1.0)  # the load poller reads the server every 0.5 s
        values = scrape(server.url, headers=None)
    assert value(values, "tierwise_requests_total") == 2
    queue = {k: v for k, v in values.items() if k[0] == "tierwise_upstream_queue"}
    assert queue == {
        ("tierwise_upstream_queue", (("state", "running"), ("tier", "cheap"))): 0.0,
        ("tierwise_upstream_queue", (("state", "waiting"), ("tier", "cheap"))): 0.0,
    }
