"""The audit log end to end: a real proxy on SQLite writes an entry for each request its text
left the building for and for each admin action; `tierwise audit report` lists them with no
prompt text, `tierwise audit verify` passes, and fails once an entry is edited in the file."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import openai

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.conftest import write_policy
from tests.integration.test_policy_cli import tierwise

SECRET_TEXT = "write to maria.lopez@example.com about the merger"


def test_egress_and_admin_actions_are_audited_and_verified(
    fake_upstream: ServerProcess, cheap_server: ServerProcess, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.db"
    tiers = {
        "cheap": {"model": "openai/cheap-model", "api_base": f"{cheap_server.url}/v1",
                  "local": True, "price": "free"},
        "frontier": {"model": "openai/frontier-model", "api_base": f"{fake_upstream.url}/v1",
                     "price": "free"},
    }  # fmt: skip
    policy = write_policy(
        tmp_path / "p.yaml",
        fake_upstream.url,
        tiers=tiers,
        routing={"threshold": 0.0},
        audit={"egress": True},
        privacy={"keep_local": {"detectors": ["email"]}},
        access={"open": True, "admin_keys_env": "TIERWISE_ADMIN_KEYS", "virtual_keys": True},
    )
    port = free_port()
    env = {"TIERWISE_LEDGER_URL": f"sqlite:///{db}", "TIERWISE_ADMIN_KEYS": "ops=adm"}
    with ServerProcess(proxy_command(policy, port), port, env=env) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="app", max_retries=0)
        try:
            for text in ("Summarise the news, please.", SECRET_TEXT, "Another question."):
                client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": text}]
                )
        finally:
            client.close()
        admin = {"authorization": "Bearer adm"}
        made = httpx.post(f"{server.url}/admin/keys", json={"label": "bot"}, headers=admin)
        assert made.status_code == 201
        time.sleep(0.5)  # the egress entries are written after the answers

    ledger = f"sqlite:///{db}"
    ok = tierwise("audit", "verify", "--ledger", ledger)
    assert ok.returncode == 0 and "chain intact" in ok.stdout, ok.stdout + ok.stderr
    report = tierwise("audit", "report", "--since", "1h", "--ledger", ledger, "--json")
    entries = [json.loads(line) for line in report.stdout.splitlines()]
    egress = [e for e in entries if e["kind"] == "egress"]
    assert len(egress) == 2  # the e-mail stayed local: no entry for it
    assert {e["tier"] for e in egress} == {"frontier"}
    assert all(e["detectors_passed"] == ["email"] and e["bytes"] > 0 for e in egress)
    actions = [e["action"] for e in entries if e["kind"] == "admin"]
    assert actions == ["policy_applied", "key_created"]  # version 1 from the file, then the key
    assert "maria" not in report.stdout and "Summarise" not in report.stdout
    table = tierwise("audit", "report", "--since", "1h", "--ledger", ledger)
    assert "sent to non-local tiers: 2 requests" in table.stdout

    conn = sqlite3.connect(db)
    (text,) = conn.execute("SELECT entry FROM audit_log WHERE seq = 2").fetchone()
    entry = json.loads(text)
    entry["data"]["tier"] = "cheap"  # pretend it stayed local
    conn.execute("UPDATE audit_log SET entry = ? WHERE seq = 2", (json.dumps(entry),))
    conn.commit()
    conn.close()
    broken = tierwise("audit", "verify", "--ledger", ledger)
    assert broken.returncode == 1 and "entry 2 was altered" in broken.stderr
