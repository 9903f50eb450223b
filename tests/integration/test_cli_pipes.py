"""CLI output read through a pipe or from a file (not a terminal): nothing cut, nothing wrapped.

rich used to assume 80 columns there: `tierwise spend` cut its cells ("fron…"), `--help` cut
option help, and the proxy's start-up lines broke mid-sentence in its log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from router.testing.processes import ServerProcess, guarded_env
from tests.conftest import StartProxy, write_policy
from tests.sdk import openai_client

ADMIN_KEY = "admin-secret"
LONG_BUDGET = "frontier-daily-budget-of-the-research-team"


def _piped(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`tierwise ARGS` with stdout and stderr piped and no COLUMNS hint."""
    environment = guarded_env(env)
    environment.pop("COLUMNS", None)
    environment.pop("TERMINAL_WIDTH", None)
    return subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        capture_output=True,  # pipes, not a terminal
        text=True,
        timeout=60,
        env=environment,
    )


def _line_with(text: str, needle: str) -> str:
    [line] = [line for line in text.splitlines() if needle in line]
    return line


@pytest.fixture(scope="module")
def proxy(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    tmp = tmp_path_factory.mktemp("pipes")
    policy = write_policy(
        tmp / "p.yaml",
        fake_upstream.url,
        budgets=[
            {"scope": "global", "window": "month", "limit_usd": 500, "on_exhausted": "cheap_only"},
            {
                "scope": "tier",
                "tier": "frontier",
                "window": "day",
                "limit_usd": 20,
                "name": LONG_BUDGET,
            },
        ],
        access={"open": True, "admin_keys_env": "TEST_PIPE_ADMIN_KEYS"},
    )
    env = {"TIERWISE_LEDGER_URL": f"sqlite:///{tmp / 'l.db'}", "TEST_PIPE_ADMIN_KEYS": ADMIN_KEY}
    server = start_proxy(policy, env=env)
    client = openai_client(base_url=f"{server.url}/v1", api_key="k", max_retries=0)
    for model in ("frontier", "cheap"):
        client.chat.completions.create(
            model=model, max_tokens=5, messages=[{"role": "user", "content": "hello"}]
        )
    return server


def test_spend_tables_are_not_cut_when_piped(proxy: ServerProcess) -> None:
    time.sleep(0.3)  # settlement runs just after each answer
    run = _piped("spend", "--url", proxy.url, env={"TIERWISE_ADMIN_KEY": ADMIN_KEY})
    assert run.returncode == 0, run.stderr
    assert "…" not in run.stdout, run.stdout
    # one row, one line: every cell of the long-named budget's row is whole and on it
    row = _line_with(run.stdout, LONG_BUDGET)
    for cell in ("frontier", "20.00", "reject"):
        assert cell in row, run.stdout
    header = _line_with(run.stdout, "remaining $")
    for column in ("budget", "subject", "window", "limit $", "projected $", "on exhausted"):
        assert column in header, run.stdout
    spend_header = _line_with(run.stdout, "frontier equivalent $")
    assert "cheap" in spend_header and "saved $" in spend_header, run.stdout
    assert len(run.stdout.splitlines()[0]) < 200  # natural width, not padded to a huge one


def test_help_is_whole_when_piped() -> None:
    run = _piped("serve", "--help")
    assert run.returncode == 0, run.stderr
    assert "…" not in run.stdout and "╭" not in run.stdout, run.stdout
    assert "Default: the embedded policies/default.yaml." in _line_with(run.stdout, "--policy")
    assert "(env TIERWISE_LEDGER_URL)." in _line_with(run.stdout, "--ledger-url")
    assert "[default: no-proxy-headers]" in run.stdout
    top = _piped("--help")
    assert top.returncode == 0 and "…" not in top.stdout, top.stdout
    commands = top.stdout.split("Commands:")[1].splitlines()
    assert not [line for line in commands if line.endswith("...")], top.stdout
    spend = _line_with(top.stdout, "  spend ")
    assert spend.rstrip().endswith("and spend per tier."), top.stdout


def test_policy_check_problems_are_one_line_each_when_piped(tmp_path: os.PathLike[str]) -> None:
    bad = os.path.join(tmp_path, "bad.yaml")
    with open(bad, "w", encoding="utf-8") as f:
        f.write("tiers:\n  cheap: {model: openai/x, api_base: 'http://h/v1', colour: red}\n")
        f.write("  frontier: {model: openai/y, price: free}\n")
    run = _piped("policy", "check", bad)
    assert run.returncode == 2
    line = _line_with(run.stderr, "tiers.cheap.colour")
    assert "known here: model" in line and line.rstrip().endswith("explains the keys)")
    line = _line_with(run.stderr, "tiers.cheap.price")
    assert line.rstrip().endswith("for a tier that costs nothing"), run.stderr


def test_serve_log_lines_are_never_wrapped(proxy: ServerProcess) -> None:
    assert proxy.log is not None
    log = proxy.log.read_text()
    warning = _line_with(log, "access.open is true")
    assert warning.startswith("WARNING: access.open is true: anyone who can reach 127.0.0.1:")
    assert warning.endswith("Use this for local development only."), log
    listening = _line_with(log, "listening on http://")
    assert listening.startswith("tierwise: policy ") and listening.endswith("/v1"), log
    # the proxy's own loggers go to the log at info, one record per line, named
    assert "INFO:     tierwise: ledger and request log: sqlite:///" in log, log


def test_policy_default_redirected_to_a_file_is_the_embedded_policy_byte_for_byte(
    tmp_path: Path,
) -> None:
    from policies import default_policy_path

    run = _piped("policy", "default")
    assert run.returncode == 0, run.stderr
    assert run.stdout == Path(default_policy_path()).read_text(encoding="utf-8")
    saved = tmp_path / "my.yaml"
    saved.write_text(run.stdout, encoding="utf-8")
    checked = _piped("policy", "check", str(saved))
    assert checked.returncode == 0, checked.stdout + checked.stderr
