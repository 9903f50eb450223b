"""`tierwise policy diff | explain | apply | history | rollback` as a user runs them (the CLI
in a subprocess; apply, history and rollback against a real proxy process)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from router.ledger import Line, open_store
from router.testing.processes import ServerProcess, free_port, guarded_env, proxy_command
from tests.integration.test_policy_reload import policy_text

REPO = Path(__file__).resolve().parents[2]
HARD = "Prove that there are infinitely many primes, step by step, with every lemma."


def tierwise(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        cwd=REPO,
        env=guarded_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _write(path: Path, **changes: Any) -> Path:
    data: dict[str, Any] = {
        "tiers": {
            "cheap": {
                "model": "openai/small",
                "api_base": "http://127.0.0.1:9/v1",
                "local": True,
                "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
            },
            "frontier": {
                "model": "openai/large",
                "api_base": "http://127.0.0.1:9/v1",
                "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
            },
        },
        "routing": {"threshold": 0.5},
        "budgets": [{"scope": "global", "window": "day", "limit_usd": 10, "soft_limit_usd": 5}],
        "access": {"open": True},
    }
    data.update(changes)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_diff_lists_changed_settings_and_budgets(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml")
    b = _write(
        tmp_path / "b.yaml",
        routing={"threshold": 0.3},
        budgets=[{"scope": "global", "window": "month", "limit_usd": 100}],
    )
    same = tierwise("policy", "diff", str(a), str(a))
    assert same.returncode == 0 and "no changes" in same.stdout
    changed = tierwise("policy", "diff", str(a), str(b))
    assert changed.returncode == 1, changed.stderr
    assert "routing.threshold: 0.5 -> 0.3" in changed.stdout
    assert "- budgets.global-day.limit_usd: 10.0" in changed.stdout
    assert "+ budgets.global-month.limit_usd: 100.0" in changed.stdout
    assert "budgets removed: global-day" in changed.stdout
    assert "budgets added: global-month" in changed.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: {cheap: {model: 3}}\n")
    refused = tierwise("policy", "diff", str(a), str(bad))
    assert refused.returncode == 2 and "tiers.cheap.model" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_explain_gives_every_reason_and_reads_spend_from_a_ledger(tmp_path: Path) -> None:
    policy = _write(tmp_path / "p.yaml", routing={"threshold": 0.5})
    plain = tierwise("policy", "explain", str(policy), "--prompt", HARD)
    assert plain.returncode == 0, plain.stderr
    assert (
        "difficulty" in plain.stdout
        and "threshold   0.5000 (from routing.threshold)" in plain.stdout
    )
    difficulty = float(plain.stdout.split("difficulty")[1].split()[0])
    tier = "frontier" if difficulty >= 0.5 else "cheap"
    assert f"served by   {tier}" in plain.stdout
    assert "global-day" in plain.stdout  # the budget line, nothing spent

    pinned = tierwise("policy", "explain", str(policy), "--prompt", "hi", "--model", "frontier")
    assert "frontier (openai/large): pinned" in pinned.stdout
    local = tierwise(
        "policy", "explain", str(policy), "--prompt", HARD, "--model", "auto", "--local-only"
    )
    assert "served by   cheap" in local.stdout
    unknown = tierwise("policy", "explain", str(policy), "--prompt", "hi", "--model", "gpt-9")
    assert unknown.returncode == 2 and "gpt-9" in unknown.stderr

    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    spent_almost_all(ledger, policy)
    paced = tierwise("policy", "explain", str(policy), "--prompt", HARD, "--ledger", ledger)
    assert paced.returncode == 0, paced.stderr
    assert "soft_limit:global-day" in paced.stdout  # 9.9 USD spent, past the 5 USD soft limit
    assert "served by   cheap" in paced.stdout
    assert "9.9000" in paced.stdout


def spent_almost_all(ledger_url: str, policy_file: Path) -> None:
    """9.9 USD settled on today's global-day line of `policy_file`."""
    import time

    from policies import load_policy
    from policies.budgets import lines_for

    policy = load_policy(policy_file)
    now = time.time()
    [line] = lines_for(policy, "frontier", None, None, now)

    async def settle() -> None:
        store = open_store(ledger_url)
        try:
            held = [Line(line.key, line.limit_micros, line.window.end)]
            await store.ledger.reserve("r1", held, 9_900_000, 60, now)
            await store.ledger.settle("r1", held, 9_900_000, now)
        finally:
            await store.aclose()

    asyncio.run(settle())


def test_apply_history_and_rollback_against_a_running_proxy(
    fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "served.yaml"
    path.write_text(policy_text(fake_upstream.url, "one"), encoding="utf-8")
    port = free_port()
    env = {"TIERWISE_LEDGER_URL": "memory://", "TIERWISE_ADMIN_KEYS": "ops=adm-key"}
    with ServerProcess(proxy_command(path, port), port, env=env) as server:
        admin = {"TIERWISE_URL": server.url, "TIERWISE_ADMIN_KEY": "adm-key"}
        new = tmp_path / "new.yaml"
        new.write_text(policy_text(fake_upstream.url, "two"), encoding="utf-8")
        applied = tierwise("policy", "apply", str(new), env=admin)
        assert applied.returncode == 0, applied.stderr
        assert "applied version 2 (api by ops)" in applied.stdout
        assert "tiers.cheap.model: openai/cheap-one -> openai/cheap-two" in applied.stdout
        again = tierwise("policy", "apply", str(new), env=admin)
        assert again.returncode == 0 and "unchanged: version 2" in again.stdout
        stale = tierwise("policy", "apply", str(path), "--if-version", "1", env=admin)
        assert stale.returncode == 1 and "412" in stale.stderr
        back = tierwise("policy", "rollback", "1", env=admin)
        assert back.returncode == 0 and "applied version 3 (rollback:1 by ops)" in back.stdout
        listed = tierwise("policy", "history", env=admin)
        assert listed.returncode == 0, listed.stderr
        assert "serving 3" in listed.stdout
        for row in ("rollback:1", "api", "file:"):
            assert row in listed.stdout
        as_json = tierwise("policy", "history", "--json", env=admin)
        assert [v["version"] for v in yaml.safe_load(as_json.stdout)["versions"]] == [3, 2, 1]
        wrong = tierwise("policy", "history", env={**admin, "TIERWISE_ADMIN_KEY": "nope"})
        assert wrong.returncode == 2 and "401" in wrong.stderr
