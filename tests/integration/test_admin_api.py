"""The admin API and `tierwise spend` against a real proxy with budgets on SQLite."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from router.testing.processes import ServerProcess, guarded_env
from tests.conftest import StartProxy
from tests.integration.test_budgets_e2e import ADMIN, budget_policy
from tests.sdk import openai_client


@pytest.fixture(scope="module")
def proxy(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    tmp = tmp_path_factory.mktemp("admin")
    policy = budget_policy(tmp / "p.yaml", fake_upstream.url, 1.0)
    server = start_proxy(policy, env={"TIERWISE_LEDGER_URL": f"sqlite:///{tmp / 'l.db'}", **ADMIN})
    client = openai_client(base_url=f"{server.url}/v1", api_key="caller-1", max_retries=0)
    for model in ("frontier", "frontier", "cheap"):
        client.chat.completions.create(
            model=model, max_tokens=5, messages=[{"role": "user", "content": "hello"}]
        )
    return server


def _get(proxy: ServerProcess, path: str, key: str | None = "admin-secret") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{proxy.url}{path}", headers=headers)


def test_admin_needs_the_admin_key(proxy: ServerProcess) -> None:
    assert _get(proxy, "/admin/budgets", None).status_code == 401
    assert _get(proxy, "/admin/budgets", "caller-1").status_code == 401
    assert _get(proxy, "/admin/budgets").status_code == 200


def test_spend_by_tier_and_savings(proxy: ServerProcess) -> None:
    deadline = time.monotonic() + 10  # settlement runs just after each answer
    while True:
        day = _get(proxy, "/admin/spend").json()["spend"]["day"]
        if day["frontier_equivalent_usd"] >= 0.015 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert day["by_tier"]["frontier"] == pytest.approx(0.010)  # 2 x 5 tokens x 1000 micro-USD
    assert day["by_tier"]["cheap"] == 0
    assert day["frontier_equivalent_usd"] == pytest.approx(0.015)  # the cheap one at frontier price
    assert day["saved_usd"] == pytest.approx(0.005)


def test_request_log_pagination(proxy: ServerProcess) -> None:
    first = _get(proxy, "/admin/requests?limit=2").json()
    assert len(first["requests"]) == 2 and first["next"]
    rest = _get(proxy, f"/admin/requests?limit=2&before={first['next']}").json()
    assert len(rest["requests"]) == 1 and rest["next"] is None
    tiers = [r["tier"] for r in first["requests"] + rest["requests"]]
    assert tiers == ["cheap", "frontier", "frontier"]  # newest first
    assert _get(proxy, "/admin/requests?tier=cheap").json()["requests"][0]["tier"] == "cheap"
    assert _get(proxy, "/admin/requests?limit=0").status_code == 400


def test_tierwise_spend_prints_tables(proxy: ServerProcess) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "router.cli", "spend", "--url", proxy.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=guarded_env({"TIERWISE_ADMIN_KEY": "admin-secret", "COLUMNS": "200"}),
    )
    assert run.returncode == 0, run.stderr
    assert "global-day" in run.stdout and "frontier" in run.stdout
    assert "0.0100" in run.stdout  # spent
    bad = subprocess.run(
        [sys.executable, "-m", "router.cli", "spend", "--url", proxy.url, "--admin-key", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        env=guarded_env(),
    )
    assert bad.returncode == 2 and "401" in bad.stderr and "Traceback" not in bad.stderr


def test_admin_disabled_without_admin_keys(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    server = start_proxy(budget_policy(tmp_path / "p.yaml", fake_upstream.url, 1.0))
    response = _get(server, "/admin/budgets")
    assert response.status_code == 403
    assert "TIERWISE_ADMIN_KEYS" in response.json()["error"]["message"]
