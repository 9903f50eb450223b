"""The `tierwise` CLI: policy check and serve's refusals (no server is started here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from policies import default_policy_path
from router.cli import app
from router.testing.processes import guarded_env

runner = CliRunner()


def test_policy_check_ok() -> None:
    result = runner.invoke(app, ["policy", "check", str(default_policy_path())])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "cheap, frontier" in result.output


def test_policy_check_reports_field_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "tiers:\n  cheap: {model: openai/x, api_base: 'http://h/v1', colour: red}\n"
        "  frontier: {model: anthropic/y}\nrouting: {threshold: 2}\n"
    )
    result = runner.invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 2
    assert "tiers.cheap.colour" in result.output
    assert "routing.threshold" in result.output
    assert "Traceback" not in result.output


def test_policy_check_prints_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "tiers:\n  cheap: {model: openai/x, api_base: 'http://h/v1'}\n"
        "  frontier: {model: anthropic/y, price: free}\n"
        "budgets:\n  - {scope: tier, tier: mid, window: day, limit_usd: 5}\n"
        "  - {scope: tier, window: day, limit_usd: 5}\n"
        "alerts:\n  - {at: [0.5], budgets: [nobody], sink: {type: log}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "router.cli", "policy", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env=guarded_env(),
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    for problem in (
        "  tiers.cheap.price: missing",
        "  budgets.0.tier: no tier named 'mid'",
        "  budgets.1.tier: missing",
        "  alerts.0.budgets.0: no budget named 'nobody'",
    ):
        assert any(line.startswith(problem) for line in lines), result.stderr
    assert "DESIGN.md" not in result.stderr


def test_policy_default_prints_the_embedded_policy() -> None:
    result = runner.invoke(app, ["policy", "default"])
    assert result.exit_code == 0
    assert "tiers:" in result.output


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=guarded_env(env),
    )


def test_serve_refuses_closed_access_without_keys(tmp_path: Path) -> None:
    policy = tmp_path / "closed.yaml"
    policy.write_text(
        "tiers:\n  cheap: {model: openai/x, api_base: 'http://127.0.0.1:1/v1', price: free}\n"
        "  frontier: {model: openai/y, api_base: 'http://127.0.0.1:1/v1', price: free}\n"
        "access: {open: false, keys_env: TEST_NO_SUCH_KEYS}\n"
    )
    result = _serve("--policy", str(policy), "--port", "1")
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    assert "TEST_NO_SUCH_KEYS" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_invalid_policy(tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text("tiers: {}\n")
    result = _serve(env={"TIERWISE_POLICY": str(policy)})
    assert result.returncode == 2
    assert "tiers" in result.stderr and "invalid policy" in result.stderr


def test_help_explains_options() -> None:
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--policy", "--host", "--port", "--ledger-url", "TIERWISE_POLICY"):
        assert option in result.output
