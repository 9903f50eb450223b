"""Budgets that hold, end to end: real proxy processes, a real fake upstream, real SQLite files
and a real redis-server, driven by the official `openai` SDK under heavy concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from router.testing.processes import ServerProcess, free_port
from tests.conftest import StartProxy, write_policy
from tests.sdk import openai_client

ADMIN = {"TIERWISE_ADMIN_KEYS": "admin-secret"}
# output tokens only, 1000 micro-USD each: with max_tokens=5 and the fake answering exactly 5
# tokens, a request reserves exactly what it then costs (5000), so the arithmetic is exact
PRICE = {"input_per_mtok": 0.0, "output_per_mtok": 1000.0}
PAYS_FOR_36 = 0.18


def budget_policy(path: Path, upstream: str, limit_usd: float, **extra: Any) -> Path:
    base = f"{upstream}/v1"
    budget = {"scope": "global", "window": "day", "limit_usd": limit_usd}
    budget.update(extra.pop("budget", {}))
    return write_policy(
        path,
        upstream,
        tiers={
            "cheap": {
                "model": "openai/cheap-model",
                "api_base": base,
                "local": True,
                "price": {"input_per_mtok": 0.0, "output_per_mtok": 0.0},
            },
            "frontier": {
                "model": "openai/frontier-model",
                "api_base": base,
                "price": PRICE,
                "timeout_s": 60,
            },
        },
        budgets=[budget],
        **extra,
    )


async def hammer(urls: list[str], n: int, model: str = "frontier") -> list[Any]:
    """`n` concurrent chat completions spread over the proxies; returns raw responses or errors."""
    clients = [
        openai.AsyncOpenAI(base_url=f"{u}/v1", api_key="k", max_retries=0, timeout=60) for u in urls
    ]

    async def one(i: int) -> Any:
        client = clients[i % len(clients)]
        try:
            return await client.chat.completions.with_raw_response.create(
                model=model, max_tokens=5, messages=[{"role": "user", "content": f"q{i}"}]
            )
        except openai.APIStatusError as exc:
            return exc

    try:
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        for client in clients:
            await client.close()


def budgets(url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/admin/budgets", headers={"authorization": "Bearer admin-secret"})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["budgets"]
    return rows


def settled(url: str, timeout: float = 20.0) -> dict[str, Any]:
    """The global budget row once no reservation is outstanding (settlement runs after replies)."""
    deadline = time.monotonic() + timeout
    while True:
        [row] = budgets(url)
        if row["reserved_usd"] == 0 or time.monotonic() > deadline:
            return row
        time.sleep(0.1)


def check_outcome(results: list[Any], row: dict[str, Any], limit_usd: float) -> int:
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert len(ok) + len(refused) == len(results)
    assert all(r.status_code == 429 for r in refused), {r.status_code for r in refused}
    assert all("global-day" in str(r) for r in refused)
    for r in ok:  # every admitted request completed, on the frontier
        assert r.headers["x-tierwise-tier"] == "frontier", r.headers["x-tierwise-reason"]
        assert r.parse().choices[0].message.content.endswith("from-fake:frontier-model")
    billed = sum(round(float(r.headers["x-tierwise-cost-usd"]) * 1e6) for r in ok)
    assert row["reserved_usd"] == 0
    assert row["spent_usd"] == pytest.approx(billed / 1e6)
    assert row["spent_usd"] <= limit_usd
    return len(ok)


def test_sqlite_budget_holds_under_300_concurrent_requests_and_survives_a_restart(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    policy = budget_policy(tmp_path / "p.yaml", fake_upstream.url, PAYS_FOR_36)
    proxy = start_proxy(policy, env={"TIERWISE_LEDGER_URL": db, **ADMIN})
    results = asyncio.run(hammer([proxy.url], 300))
    row = settled(proxy.url)
    admitted = check_outcome(results, row, PAYS_FOR_36)
    assert admitted == 36 and row["spent_usd"] == PAYS_FOR_36
    proxy.stop()
    again = start_proxy(policy, env={"TIERWISE_LEDGER_URL": db, **ADMIN})
    assert settled(again.url)["spent_usd"] == row["spent_usd"]  # restart keeps spend
    requests = httpx.get(
        f"{again.url}/admin/requests?limit=1000", headers={"authorization": "Bearer admin-secret"}
    ).json()["requests"]
    assert sum(1 for r in requests if r["status"] == 200) == admitted
    assert all(r["prompt"] is None for r in requests)  # no prompt text unless asked for


def test_two_replicas_on_one_redis_never_overspend(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path, redis_url: str
) -> None:
    policy = budget_policy(tmp_path / "p.yaml", fake_upstream.url, PAYS_FOR_36)
    env = {"TIERWISE_LEDGER_URL": redis_url, **ADMIN}
    a, b = start_proxy(policy, env=env), start_proxy(policy, env=env)
    results = asyncio.run(hammer([a.url, b.url], 400))
    row = settled(a.url)
    admitted = check_outcome(results, row, PAYS_FOR_36)
    assert admitted == 36 and row["spent_usd"] == PAYS_FOR_36
    served = {r.headers["x-tierwise-request-id"] for r in results if not isinstance(r, Exception)}
    assert len(served) == admitted
    assert settled(b.url)["spent_usd"] == row["spent_usd"]  # both replicas see the same ledger


def test_cheap_only_downgrades_the_overflow(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    policy = budget_policy(
        tmp_path / "p.yaml", fake_upstream.url, PAYS_FOR_36, budget={"on_exhausted": "cheap_only"}
    )
    proxy = start_proxy(
        policy, env={"TIERWISE_LEDGER_URL": f"sqlite:///{tmp_path / 'l.db'}", **ADMIN}
    )
    results = asyncio.run(hammer([proxy.url], 200))
    assert not any(isinstance(r, Exception) for r in results)  # nobody refused
    tiers = [r.headers["x-tierwise-tier"] for r in results]
    assert "frontier" in tiers and "cheap" in tiers
    downgraded = [r for r in results if r.headers["x-tierwise-tier"] == "cheap"]
    assert all(r.headers["x-tierwise-reason"] == "budget_exhausted:global-day" for r in downgraded)
    assert tiers.count("frontier") == 36
    assert settled(proxy.url)["spent_usd"] == PAYS_FOR_36


def test_a_killed_replicas_reservation_expires(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    policy = budget_policy(tmp_path / "p.yaml", fake_upstream.url, 10.0, ledger={"lease_s": 2})
    env = {"TIERWISE_LEDGER_URL": db, **ADMIN}
    doomed, survivor = start_proxy(policy, env=env), start_proxy(policy, env=env)

    def slow_call() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{doomed.url}/v1/chat/completions",
                json={
                    "model": "frontier",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "[[sleep:30]]"}],
                },
                timeout=30,
            )

    import threading

    caller = threading.Thread(target=slow_call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 10
    while budgets(survivor.url)[0]["reserved_usd"] == 0:
        assert time.monotonic() < deadline, "the slow request never reserved"
        time.sleep(0.05)
    assert doomed.process is not None
    doomed.process.send_signal(signal.SIGKILL)  # no settle, no release: only the lease remains
    doomed.process.wait()
    held = time.monotonic()
    while budgets(survivor.url)[0]["reserved_usd"] > 0:
        assert time.monotonic() - held < 10, "the dead replica's reservation never expired"
        time.sleep(0.1)
    assert budgets(survivor.url)[0]["spent_usd"] == 0


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_outage_fails_closed_for_the_frontier_and_recovers(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    port = free_port()
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]

    def start_redis() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=port).ping():
                    return server
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("throwaway redis-server did not start")

    server = start_redis()
    try:
        policy = budget_policy(tmp_path / "p.yaml", fake_upstream.url, 10.0)
        proxy = start_proxy(policy, env={"TIERWISE_LEDGER_URL": f"redis://127.0.0.1:{port}/0"})
        client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)

        def tier() -> tuple[str, str]:
            r = client.chat.completions.with_raw_response.create(
                model="frontier", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
            return r.headers["x-tierwise-tier"], r.headers["x-tierwise-reason"]

        assert tier() == ("frontier", "pinned")
        server.terminate()
        server.wait()
        started = time.monotonic()
        assert tier() == ("cheap", "ledger_unavailable")  # fail closed for the frontier
        assert time.monotonic() - started < 5  # promptly, no hang
        server = start_redis()
        deadline = time.monotonic() + 15
        while tier() != ("frontier", "pinned"):
            assert time.monotonic() < deadline, "never recovered after redis came back"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait()
        os.environ.pop("UNUSED", None)
