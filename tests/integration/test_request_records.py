"""One request-log record per request, whatever its outcome (README: "Request log"), and `auto`
requests that a frontier budget refuses going to the cheap tier: a real proxy, the cheap tier's
fake server as its own process, the frontier on the session's fake upstream, the `openai` SDK,
and `/admin/requests` as the client reads it."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy
from tests.sdk import openai_client

ADMIN = "admin-records"
HARD = "Prove step by step that the integral of x^2 from 0 to 1 is 1/3, then write python code."
# output tokens only: with max_tokens=5 and the fake answering 5 tokens, a frontier request
# reserves and costs exactly $0.005
PRICE = {"input_per_mtok": 0.0, "output_per_mtok": 1000.0}


def _policy(
    tmp: Path, cheap: ServerProcess, frontier: ServerProcess, budgets: list[dict[str, Any]]
) -> Path:
    return write_policy(
        tmp / "policy.yaml",
        frontier.url,
        tiers={
            "cheap": {
                "model": "openai/cheap-model",
                "api_base": f"{cheap.url}/v1",
                "local": True,
                "price": PRICE,
            },
            "frontier": {
                "model": "openai/frontier-model",
                "api_base": f"{frontier.url}/v1",
                "price": PRICE,
            },
        },
        routing={
            "threshold": 0.5,
            # the pinned and budget-refused failures below are unchecked (no other tier asked):
            # they open the breaker on its rate, 3 failed of the 4-5 cheap calls, not a streak
            "breaker": {"failures": 2, "cooldown_s": 60, "min_requests": 4, "failure_rate": 0.6},
        },
        budgets=budgets,
    )


def _ask(client: openai.OpenAI, content: str, model: str = "auto") -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, max_tokens=5, messages=[{"role": "user", "content": content}]
    )


def _refused(client: openai.OpenAI, content: str, model: str = "auto") -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        _ask(client, content, model)
    return caught.value


def _records(proxy: ServerProcess) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{proxy.url}/admin/requests",
        params={"limit": 1000},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()["requests"]
    return records


def _hang_up_mid_stream(proxy: ServerProcess) -> str:
    """Start a stream on the cheap tier, read its first bytes, hang up; the request id."""
    body = json.dumps(
        {
            "model": "auto",
            "stream": True,
            "messages": [{"role": "user", "content": "hi [[chunks:200]] [[chunk_delay:0.05]]"}],
        }
    ).encode()
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
    assert b"200 OK" in head
    line = next(x for x in head.split(b"\r\n") if x.lower().startswith(b"x-tierwise-request-id"))
    return line.split(b":", 1)[1].strip().decode()


def test_every_outcome_gets_one_record_with_the_status_the_client_saw(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    frontier_day = {
        "scope": "tier",
        "tier": "frontier",
        "window": "day",
        "limit_usd": 0.01,  # two frontier answers
        "on_exhausted": "reject",
        "name": "frontier-day",
    }
    proxy = start_proxy(
        _policy(tmp_path, cheap_server, fake_upstream, [frontier_day]),
        env={"TIERWISE_ADMIN_KEYS": ADMIN},
    )
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    expected: dict[str, tuple[int, str, str]] = {}  # request id -> (status, tier, reason)

    gone = _hang_up_mid_stream(proxy)
    expected[gone] = (499, "cheap", "client_disconnected")

    fell_back = _ask(client, "hi [[status:500@cheap-model]]")  # auto, easy: cheap fails
    assert fell_back.headers["x-tierwise-tier"] == "frontier"
    expected[fell_back.headers["x-tierwise-request-id"]] = (200, "frontier", "fallback:cheap_error")

    pinned = _ask(client, "hi", model="frontier")  # spends the rest of frontier-day
    expected[pinned.headers["x-tierwise-request-id"]] = (200, "frontier", "pinned")

    refused = _refused(client, "hi", model="frontier")  # pinned: its tier's budget refuses
    assert refused.status_code == 429
    code = refused.response.json()["error"]["code"]  # budget_exhausted (or a finer code)
    expected[refused.response.headers["x-tierwise-request-id"]] = (
        429,
        "frontier",
        f"{code}:frontier-day",
    )

    moved = _ask(client, HARD)  # auto, hard: frontier-day has no room, the cheap tier has
    assert moved.headers["x-tierwise-tier"] == "cheap"
    reason = moved.headers["x-tierwise-reason"]
    assert reason.endswith(":frontier-day") and reason.startswith("budget_")
    expected[moved.headers["x-tierwise-request-id"]] = (200, "cheap", reason)

    failed = _refused(client, "hi [[status:500@cheap-model]]")  # no fallback: budget
    assert failed.status_code == 502
    failed_rid = failed.response.headers["x-tierwise-request-id"]

    broke = _refused(client, "hi [[status:500@cheap-model]]", model="cheap")  # breaker opens
    assert broke.status_code == 502
    expected[broke.response.headers["x-tierwise-request-id"]] = (502, "cheap", "failed:cheap:error")

    breaker = _refused(client, "hi", model="cheap")
    assert breaker.status_code == 502 and "circuit breaker open" in breaker.message
    assert "last failure: HTTP 500" in breaker.message
    expected[breaker.response.headers["x-tierwise-request-id"]] = (
        502,
        "cheap",
        "failed:cheap:breaker_open",
    )

    deadline = time.monotonic() + 10
    while not any(r["request_id"] == gone for r in _records(proxy)):
        assert time.monotonic() < deadline, "no record for the stream whose client hung up"
        time.sleep(0.1)
    records = _records(proxy)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_id.setdefault(record["request_id"], []).append(record)
    assert len(records) == len(expected) + 1  # one each, nothing per attempt
    for rid, (status, tier, why) in expected.items():
        [record] = by_id[rid]
        assert (record["status"], record["tier"], record["reason"]) == (status, tier, why), rid
    [failed_record] = by_id[failed_rid]
    assert failed_record["status"] == 502
    assert failed_record["reason"].startswith("failed:cheap:error,frontier:budget_")
    assert by_id[fell_back.headers["x-tierwise-request-id"]][0]["cost_micros"] == 5000


def test_auto_goes_to_a_tier_with_room_and_reject_only_when_none_has(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    budgets = [
        {
            "scope": "tier",
            "tier": "frontier",
            "window": "day",
            "limit_usd": 0.005,  # one frontier answer
            "on_exhausted": "reject",
            "name": "frontier-day",
        },
        {
            "scope": "global",
            "window": "day",
            "limit_usd": 0.01,  # and one cheap answer
            "on_exhausted": "reject",
            "name": "all-day",
        },
    ]
    proxy = start_proxy(
        _policy(tmp_path, cheap_server, fake_upstream, budgets),
        env={"TIERWISE_ADMIN_KEYS": ADMIN},
    )
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    first = _ask(client, HARD)
    assert first.headers["x-tierwise-tier"] == "frontier"
    second = _ask(client, HARD)  # the frontier is out of budget: the cheap tier answers
    assert second.headers["x-tierwise-tier"] == "cheap"
    assert second.headers["x-tierwise-reason"].endswith(":frontier-day")
    assert second.parse().choices[0].message.content.endswith("from-local:cheap-model")
    third = _refused(client, HARD)  # no allowed tier has room: now reject applies
    assert third.status_code == 429
    assert "all-day" in third.message
    pinned = _refused(client, "hi", model="frontier")
    assert pinned.status_code == 429
