"""`tierwise export requests` from a real proxy, then `tierwise simulate` of that export and of a
labelled file through two policies: the table, the JSON and the PNG a user gets."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from openai import OpenAI

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.integration.test_policy_cli import tierwise
from tests.integration.test_policy_reload import policy_text


def test_export_then_simulate_the_proxys_own_traffic(
    fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    data = yaml.safe_load(policy_text(fake_upstream.url, "x"))
    data["routing"] = {"threshold": 0.5}
    data["logging"] = {"prompts": True}
    policy.write_text(yaml.safe_dump(data), encoding="utf-8")
    port = free_port()
    env = {"TIERWISE_LEDGER_URL": f"sqlite:///{tmp_path / 'l.db'}", "TIERWISE_ADMIN_KEYS": "k"}
    prompts = ["hi", "Prove that there are infinitely many primes, with every step.", "thanks"]
    with ServerProcess(proxy_command(policy, port), port, env=env) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        try:
            for text in prompts * 3:
                client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": text}]
                )
            client.chat.completions.create(
                model="frontier", messages=[{"role": "user", "content": "pinned"}]
            )
        finally:
            client.close()
        admin = {"TIERWISE_URL": server.url, "TIERWISE_ADMIN_KEY": "k"}
        log = tmp_path / "log.jsonl"
        exported = tierwise("export", "requests", "--since", "1h", "--out", str(log), env=admin)
        assert exported.returncode == 0, exported.stderr
        assert "wrote 10 records" in exported.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["prompt"] for r in records[:3]] == prompts  # oldest first, prompts kept
    assert records[-1]["reason"] == "pinned"

    cheaper = tmp_path / "cheaper.yaml"
    data["routing"] = {"threshold": 1.0}
    cheaper.write_text(yaml.safe_dump(data), encoding="utf-8")
    out, png = tmp_path / "sim.json", tmp_path / "sim.png"
    run = tierwise(
        "simulate",
        "--policy",
        str(policy),
        "--policy",
        str(cheaper),
        "--traffic",
        str(log),
        "--out",
        str(out),
        "--plot",
        str(png),
    )
    assert run.returncode == 0, run.stderr
    assert "policy.yaml" in run.stdout and "cheaper.yaml" in run.stdout
    report = json.loads(out.read_text())
    assert report["kind"] == "request_log" and report["requests"] == 10
    first, second = report["policies"]
    assert first["frontier_share"] >= second["frontier_share"]
    assert second["frontier_share"] == 0.1  # only the pinned request reaches the frontier
    assert first["cost_usd"] >= second["cost_usd"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_labelled_traffic_reports_quality_and_refuses_bad_input(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"id": str(i), "prompt": f"question {i}", "scores": {"w": 0.0, "s": 1.0}})
            + "\n"
            for i in range(20)
        )
    )
    policy = tmp_path / "p.yaml"
    policy.write_text(
        policy_text("http://127.0.0.1:9", "x").replace("threshold: 1.0", "threshold: 0.0")
    )
    run = tierwise(
        "simulate",
        "--policy",
        str(policy),
        "--traffic",
        str(rows),
        "--weak",
        "w",
        "--strong",
        "s",
        "--start",
        "2027-01-01T00:00:00Z",
        "--out",
        str(tmp_path / "o.json"),
    )
    assert run.returncode == 0, run.stderr
    quality = json.loads((tmp_path / "o.json").read_text())["policies"][0]["quality"]
    assert quality == {
        "rows": 20,
        "routed": 1.0,
        "all_cheap": 0.0,
        "all_frontier": 1.0,
        "pgr": 1.0,
        "kept_of_frontier": 1.0,
    }
    missing = tierwise("simulate", "--policy", str(policy), "--traffic", str(rows), "--weak", "w")
    assert missing.returncode == 2 and "--strong" in missing.stderr
    unknown = tierwise(
        "simulate",
        "--policy",
        str(policy),
        "--traffic",
        str(rows),
        "--weak",
        "w",
        "--strong",
        "gpt-9",
    )
    assert unknown.returncode == 2 and "s, w" in unknown.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    broken = tierwise("simulate", "--policy", str(policy), "--traffic", str(bad))
    assert broken.returncode == 2 and "bad.jsonl:1" in broken.stderr
    assert "Traceback" not in broken.stderr
