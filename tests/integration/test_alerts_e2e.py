"""Budget alerts end to end: real proxy processes, a real alert receiver process, a real
redis-server shared by two replicas, driven by the official `openai` SDK."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.testing.processes import ServerProcess, free_port, guarded_env
from tests.conftest import StartProxy
from tests.integration.test_budgets_e2e import ADMIN, PAYS_FOR_36, budget_policy, hammer
from tests.sdk import openai_client

QUIET = {"forecast": {"enabled": False}, "health": {"enabled": False}}


@pytest.fixture
def receiver(logs_dir: Path) -> Iterator[ServerProcess]:
    port = free_port()
    command = [sys.executable, "-m", "router.testing.receiver", "--port", str(port)]
    with ServerProcess(command, port, log=logs_dir / f"receiver_{port}.log") as server:
        yield server


def hook(receiver: ServerProcess, **rule: Any) -> dict[str, Any]:
    sink = {"type": "webhook", "url": f"{receiver.url}/hook", "backoff_s": 0.05}
    sink.update(rule.pop("sink", {}))
    return {"at": [0.5, 0.8, 1.0], "sink": sink, **QUIET, **rule}


def received(receiver: ServerProcess) -> list[dict[str, Any]]:
    data = httpx.get(f"{receiver.url}/_received").json()
    return [r["body"] for r in data["received"]]


def wait_for(receiver: ServerProcess, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The alerts received once at least `n` arrived, after a pause that lets duplicates show."""
    deadline = time.monotonic() + timeout
    while len(received(receiver)) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    return received(receiver)


def by_threshold(alerts: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return sorted((a["kind"], a["threshold"]) for a in alerts if a["kind"] != "forecast")


def test_two_replicas_on_one_redis_send_each_threshold_exactly_once(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    receiver: ServerProcess,
    tmp_path: Path,
    redis_url: str,
) -> None:
    rule = hook(receiver, forecast={"enabled": True})
    policy = budget_policy(tmp_path / "p.yaml", fake_upstream.url, PAYS_FOR_36, alerts=[rule])
    env = {"TIERWISE_LEDGER_URL": redis_url, **ADMIN}
    a, b = start_proxy(policy, env=env), start_proxy(policy, env=env)
    results = asyncio.run(hammer([a.url, b.url], 300))
    assert sum(1 for r in results if not isinstance(r, Exception)) == 36
    alerts = wait_for(receiver, 3)
    assert by_threshold(alerts) == [("exhausted", 1.0), ("threshold", 0.5), ("threshold", 0.8)]
    assert sum(1 for x in alerts if x["kind"] == "forecast") <= 1  # depends on the time of day
    for x in alerts:
        assert x["budget"] == "global-day" and x["scope"] == "global" and x["subject"] == "all"
        assert x["limit_usd"] == PAYS_FOR_36 and x["window"] and x["time"].endswith("Z")
        assert x["text"]
    half = next(x for x in alerts if x["threshold"] == 0.5)
    assert half["spent_usd"] + half["reserved_usd"] >= 0.09
    stats = [
        httpx.get(f"{p.url}/admin/alerts", headers={"authorization": "Bearer admin-secret"})
        for p in (a, b)
    ]
    assert all(s.status_code == 200 for s in stats)
    delivered = sum(s.json()["sinks"][0]["delivered"] for s in stats)
    assert delivered == len(alerts)
    assert all(s.json()["sinks"][0]["failed"] == 0 for s in stats)
    ready = httpx.get(f"{a.url}/readyz").json()
    assert set(ready["alerts"]) >= {"queued", "delivered", "failed", "dropped"}


def test_exhausted_fires_on_the_first_refusal_and_retries_reach_a_failing_receiver_once(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    receiver: ServerProcess,
    tmp_path: Path,
    redis_url: str,
) -> None:
    httpx.post(f"{receiver.url}/_fail", json={"n": 3})
    # 3 requests of 5000 micro-USD fit a 17500 limit; the 4th is refused with spend at 15000
    policy = budget_policy(tmp_path / "p.yaml", fake_upstream.url, 0.0175, alerts=[hook(receiver)])
    env = {"TIERWISE_LEDGER_URL": redis_url, **ADMIN}
    a, b = start_proxy(policy, env=env), start_proxy(policy, env=env)
    statuses = []
    for i in range(8):
        client = openai_client(base_url=f"{(a, b)[i % 2].url}/v1", api_key="k", max_retries=0)
        try:
            client.chat.completions.create(
                model="frontier", max_tokens=5, messages=[{"role": "user", "content": f"q{i}"}]
            )
            statuses.append(200)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
        time.sleep(0.2)  # let the settlement (and its alert check) land
    assert statuses == [200, 200, 200, 429, 429, 429, 429, 429]
    alerts = wait_for(receiver, 3)
    assert by_threshold(alerts) == [("exhausted", 1.0), ("threshold", 0.5), ("threshold", 0.8)]
    exhausted = next(x for x in alerts if x["kind"] == "exhausted")
    assert exhausted["details"]["action"] == "refused"
    assert exhausted["spent_usd"] < exhausted["limit_usd"]  # settled spend stayed under it
    attempts = httpx.get(f"{receiver.url}/_received").json()["attempts"]
    assert attempts == len(alerts) + 3  # the 3 failed attempts were retried, nothing doubled


def test_cheap_only_downgrade_fires_exhausted(
    start_proxy: StartProxy, fake_upstream: ServerProcess, receiver: ServerProcess, tmp_path: Path
) -> None:
    policy = budget_policy(
        tmp_path / "p.yaml",
        fake_upstream.url,
        0.0175,
        budget={"on_exhausted": "cheap_only"},
        alerts=[hook(receiver, at=[1.0])],
    )
    proxy = start_proxy(
        policy, env={"TIERWISE_LEDGER_URL": f"sqlite:///{tmp_path / 'l.db'}", **ADMIN}
    )
    results = asyncio.run(hammer([proxy.url], 20))
    assert not any(isinstance(r, Exception) for r in results)
    [alert] = wait_for(receiver, 1)
    assert alert["kind"] == "exhausted" and alert["details"]["action"] == "downgraded"


def alerts_cli(policy: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "alerts", "test", "--policy", str(policy)],
        env=guarded_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_alerts_test_reports_each_sink(
    fake_upstream: ServerProcess, receiver: ServerProcess, tmp_path: Path
) -> None:
    good = [
        hook(receiver, sink={"headers_env": {"Authorization": "HOOK_AUTH"}}),
        hook(receiver, sink={"type": "slack", "url": f"{receiver.url}/slack"}),
        {"at": [0.8], "sink": {"type": "log"}},
    ]
    policy = budget_policy(tmp_path / "ok.yaml", fake_upstream.url, 1.0, alerts=good)
    done = alerts_cli(policy, {"HOOK_AUTH": "Bearer hook-secret"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["ok"] * 3
    records = httpx.get(f"{receiver.url}/_received").json()["received"]
    [webhook] = [r for r in records if r["path"] == "/hook"]
    assert webhook["headers"]["authorization"] == "Bearer hook-secret"
    assert webhook["body"]["kind"] == "test"
    [slack] = [r for r in records if r["path"] == "/slack"]
    assert "tierwise" in slack["body"]["text"] and slack["body"]["blocks"]

    dead = f"http://127.0.0.1:{free_port()}/hook"
    bad = [*good[:1], {"at": [0.5], "sink": {"type": "webhook", "url": dead}}]
    policy = budget_policy(tmp_path / "bad.yaml", fake_upstream.url, 1.0, alerts=bad)
    done = alerts_cli(policy)  # HOOK_AUTH unset now, and nothing listens on `dead`
    assert done.returncode == 2
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["failed"] * 2
    assert "HOOK_AUTH" in done.stdout and "ConnectError" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
