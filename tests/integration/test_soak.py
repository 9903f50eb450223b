"""A bounded soak (issue 15): `benchmarks/soak.py --quick`, 40 s of mixed OpenAI/Anthropic SDK
traffic from 12 clients over two real replicas sharing a real redis-server, with ~18% of the
prompts failing on their own, dropped streams, the cheap upstream killed for 5 s, Redis killed
and restarted from its AOF, and a replica stopped and started. The script exits non-zero when a
check fails; the assertions below read its JSON so that each failure says which check."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from router.testing.processes import guarded_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


def test_soak_keeps_serving_and_keeps_its_books(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--quick", "--out", str(out)]
    done = subprocess.run(
        command, cwd=ROOT, env=guarded_env(), capture_output=True, text=True, timeout=400
    )
    assert out.exists(), done.stdout[-3000:] + done.stderr[-6000:]
    result = json.loads(out.read_text())
    outcomes, books = result["outcomes"], result["books"]

    # the soak did what it says: enough traffic of every kind, each fault injected
    assert result["requests"] >= 300
    assert set(result["by_kind"]) == set(result["kinds"])
    faults = [(f["fault"], f["phase"]) for f in result["faults"]]
    assert ("cheap_upstream", "killed") in faults and ("redis", "back") in faults
    assert ("replica_0", "back") in faults
    assert result["served_during_redis_outage"] > 0  # those settlements went through the spool
    assert books["by_status"].get("499", 0) > 0  # dropped streams
    assert books["by_status"].get("502", 0) > 0  # requests that failed on both tiers
    # the cheap upstream's death opened its breaker: the watcher sees breakers at all
    assert result["breaker_polls"] > 40
    assert any(b["tier"] == "cheap" and b["state"] != "closed" for b in result["breaker_changes"])

    # what must hold
    assert result["breaker_opened_wrongly"] == []
    assert result["healthy_not_200"] == []
    assert outcomes["lost"] == []
    assert outcomes["missing_from_log"] == []
    assert outcomes["wrong_status"] == []
    assert outcomes["wrong_cost_header"] == []
    assert outcomes["records_without_a_client"] == 0
    assert outcomes["reconnects_outside_the_restart"] == []
    assert [r for r in books["lines"] if not r["equal"]] == []
    assert books["balanced"]
    assert done.returncode == 0, done.stderr[-3000:]
