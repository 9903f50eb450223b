"""Privacy routing end to end: requests a `privacy.keep_local` rule matches never reach the
frontier fake (its own process, whose request counter is read back), whatever would have sent
them there: `auto` routing, a pin (refused with 403), escalation, spill-over from a saturated
local tier, a budget, or the local tier being down (a clear error instead of a fallback)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.testing.processes import ServerProcess, free_port, upstream_command
from tests.conftest import StartProxy, write_policy
from tests.sdk import openai_client

SENSITIVE = "Please email the report to maria.lopez@example.com by Friday."
PLAIN = "Summarise the French revolution in three paragraphs."
KEEP_LOCAL = {
    "keep_local": {
        "detectors": ["email", "payment_card", "secret"],
        "tags": ["pii"],
        "patterns": [r"PROJECT-\d{4}"],
        "terms": ["Operation Nightjar"],
    }
}


@pytest.fixture
def frontier(logs_dir: Path) -> Iterator[ServerProcess]:
    port = free_port()
    command = upstream_command(port, name="frontier")
    with ServerProcess(command, port, "/_stats", log=logs_dir / f"frontier_{port}.log") as server:
        yield server


def frontier_calls(frontier: ServerProcess) -> int:
    return int(httpx.get(f"{frontier.url}/_stats").json()["requests"])


def _policy(tmp: Path, local: ServerProcess, remote: ServerProcess, **extra: Any) -> Path:
    tiers = {
        "cheap": {
            "model": "openai/cheap-model",
            "api_base": f"{local.url}/v1",
            "local": True,
            "timeout_s": 5,
            "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
            **extra.pop("cheap", {}),
        },
        "frontier": {
            "model": "openai/frontier-model",
            "api_base": f"{remote.url}/v1",
            "price": {"input_per_mtok": 3, "output_per_mtok": 15},
        },
    }
    return write_policy(tmp / "p.yaml", local.url, tiers=tiers, privacy=KEEP_LOCAL, **extra)


def ask(client: openai.OpenAI, content: str, model: str = "auto", **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **kw
    )


def test_sensitive_requests_stay_local_when_auto_would_send_them_out(
    start_proxy: StartProxy, cheap_server: ServerProcess, frontier: ServerProcess, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, cheap_server, frontier, routing={"threshold": 0.0})
    proxy = start_proxy(policy, env={"TIERWISE_ADMIN_KEYS": "adm"})
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    plain = ask(client, PLAIN)
    assert plain.headers["x-tierwise-tier"] == "frontier"  # threshold 0: auto goes out
    assert frontier_calls(frontier) == 1
    cases: list[tuple[str, dict[str, Any], str]] = [
        (SENSITIVE, {}, "detector:email"),
        ("card 4111 1111 1111 1111 please", {}, "detector:payment_card"),
        ("my key is sk-proj-abcdefghijklmnopqrstuvwx1234567890", {}, "detector:secret"),
        ("status of PROJECT-4821?", {}, "pattern:0"),
        ("what do we know about operation nightjar", {}, "term:0"),
        (PLAIN, {"extra_headers": {"x-tierwise-tags": "billing, pii"}}, "tag:pii"),
        (PLAIN, {"metadata": {"tags": "pii"}}, "tag:pii"),
    ]
    for text, kw, rule in cases:
        reply = ask(client, text, **kw)
        assert reply.headers["x-tierwise-tier"] == "cheap", text
        assert reply.headers["x-tierwise-privacy"] == rule
        assert reply.headers["x-tierwise-reason"] == f"privacy:{rule}"
    with pytest.raises(openai.PermissionDeniedError) as refused:
        ask(client, SENSITIVE, model="frontier")
    assert "detector:email" in str(refused.value) and "maria" not in str(refused.value)
    assert frontier_calls(frontier) == 1  # only the plain request ever went out
    log = httpx.get(f"{proxy.url}/admin/requests", headers={"authorization": "Bearer adm"}).json()[
        "requests"
    ]
    reasons = [r["reason"] for r in log]
    assert "privacy:detector:email" in reasons and "refused:forbidden" in reasons
    assert all("maria" not in str(r) for r in log)  # no prompt text unless the policy keeps it


def test_no_fallback_escalation_spill_over_or_budget_sends_them_out(
    start_proxy: StartProxy, cheap_server: ServerProcess, frontier: ServerProcess, tmp_path: Path
) -> None:
    policy = _policy(
        tmp_path,
        cheap_server,
        frontier,
        cheap={"max_queue": 1},
        routing={"threshold": 1.0, "escalate": True},
        budgets=[{"scope": "tier", "tier": "cheap", "window": "day", "limit_usd": 0.01}],
    )
    proxy = start_proxy(policy)
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)

    empty = ask(client, f"{SENSITIVE} [[empty:1]]")  # a failed cheap check would escalate
    assert empty.headers["x-tierwise-tier"] == "cheap"
    assert "x-tierwise-escalated-from" not in empty.headers

    held = threading.Thread(target=lambda: ask(client, f"{PLAIN} [[sleep:1.5]]", model="cheap"))
    held.start()  # the local tier is now at max_queue: auto requests would spill over
    try:
        time.sleep(0.3)
        waited = ask(client, SENSITIVE)
        assert waited.headers["x-tierwise-tier"] == "cheap"
        assert "x-tierwise-fallback" not in waited.headers
    finally:
        held.join()

    long = SENSITIVE + " " + "word " * 2000  # its worst case does not fit the cheap budget
    with pytest.raises(openai.RateLimitError):
        ask(client, long, max_tokens=100_000)
    assert frontier_calls(frontier) == 0

    cheap_server.stop()  # the local tier is down
    plain = ask(client, PLAIN)
    assert plain.headers["x-tierwise-tier"] == "frontier"  # others still fall back
    with pytest.raises(openai.APIStatusError) as failed:
        ask(client, SENSITIVE)
    assert failed.value.status_code == 502
    assert "privacy rule detector:email keeps it on local tiers" in str(failed.value)
    assert frontier_calls(frontier) == 1  # the plain one alone
