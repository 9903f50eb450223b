"""Fallbacks, retries, the circuit breaker, saturation spill-over, escalation and local-only
requests, with real processes: the cheap tier's fake server is its own process so it can be
killed and restarted; the frontier is the session's fake upstream."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from router.testing.processes import ServerProcess, guarded_env
from tests.conftest import StartProxy, write_policy
from tests.sdk import anthropic_client, openai_client

EASY = "hi"


def policy(tmp: Path, local: ServerProcess, remote: ServerProcess, **extra: Any) -> Path:
    cheap_tier = {
        "model": "openai/cheap-model",
        "api_base": f"{local.url}/v1",
        "local": True,
        "timeout_s": 5,
        "price": "free",
        **extra.pop("cheap", {}),
    }
    frontier_tier = {
        "model": "openai/frontier-model",
        "api_base": f"{remote.url}/v1",
        "price": "free",
        **extra.pop("frontier", {}),
    }
    routing = {
        "threshold": 0.5,
        "breaker": {"failures": 2, "cooldown_s": 1.0},
        **extra.pop("routing", {}),
    }
    return write_policy(
        tmp / "p.yaml",
        local.url,
        tiers={"cheap": cheap_tier, "frontier": frontier_tier},
        routing=routing,
        **extra,
    )


def ask(client: openai.OpenAI, content: str = EASY, model: str = "auto", **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **kw
    )


def test_local_down_falls_back_then_the_breaker_opens_and_closes(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(policy(tmp_path, cheap_server, fake_upstream))
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    assert ask(client).headers["x-tierwise-tier"] == "cheap"
    cheap_server.stop()  # the local server dies mid-traffic
    first = ask(client)
    assert first.headers["x-tierwise-tier"] == "frontier"
    assert first.headers["x-tierwise-reason"] == "fallback:cheap_error"
    assert first.headers["x-tierwise-fallback"].startswith("cheap:error;cause=")
    assert first.parse().choices[0].message.content.endswith("from-fake:frontier-model")
    ask(client)  # second consecutive failure: the breaker opens
    opened = ask(client)
    assert opened.headers["x-tierwise-reason"] == "fallback:cheap_breaker_open"
    health = httpx.get(f"{proxy.url}/readyz").json()["health"]
    assert health["cheap"]["breaker"] == "open"
    cheap_server.start()  # back on the same port
    time.sleep(1.1)  # cooldown: the next request is the half-open probe
    deadline = time.monotonic() + 10
    while ask(client).headers["x-tierwise-tier"] != "cheap":
        assert time.monotonic() < deadline, "the breaker never closed again"
        time.sleep(0.2)
    assert httpx.get(f"{proxy.url}/readyz").json()["health"]["cheap"]["breaker"] == "closed"


def test_frontier_429_is_retried_then_falls_back_to_local(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    routing = {"fallback_pinned": True}  # these requests are pinned to the frontier
    proxy = start_proxy(
        policy(tmp_path, cheap_server, fake_upstream, frontier={"retries": 2}, routing=routing)
    )
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    before = httpx.get(f"{fake_upstream.url}/_stats").json()["by_model"].get("frontier-model", 0)
    reply = ask(client, "[[status:429@frontier-model]]", model="frontier")
    after = httpx.get(f"{fake_upstream.url}/_stats").json()["by_model"]["frontier-model"]
    assert after - before == 3  # the call and two jittered retries
    assert reply.headers["x-tierwise-tier"] == "cheap"
    assert reply.headers["x-tierwise-reason"] == "fallback:frontier_error"
    # a 500 the same way
    reply = ask(client, "[[status:500@frontier-model]]", model="frontier")
    assert reply.headers["x-tierwise-tier"] == "cheap"


def test_429_without_a_fallback_is_passed_through(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(policy(tmp_path, cheap_server, fake_upstream, routing={"fallback": False}))
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        ask(client, "[[status:429@frontier-model]]", model="frontier")


def test_a_slow_local_server_spills_auto_traffic_to_the_frontier(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(policy(tmp_path, cheap_server, fake_upstream, cheap={"max_inflight": 2}))

    async def burst() -> list[Any]:
        client = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
        try:
            return await asyncio.gather(
                *(
                    client.chat.completions.with_raw_response.create(
                        model="auto",
                        messages=[{"role": "user", "content": "[[sleep:1@cheap-model]]"}],
                    )
                    for _ in range(6)
                )
            )
        finally:
            await client.close()

    replies = asyncio.run(burst())
    tiers = sorted(r.headers["x-tierwise-tier"] for r in replies)
    assert tiers.count("cheap") == 2 and tiers.count("frontier") == 4
    spilled = [r for r in replies if r.headers["x-tierwise-tier"] == "frontier"]
    assert all(r.headers["x-tierwise-reason"] == "fallback:cheap_saturated" for r in spilled)


def test_server_reported_queue_spills_too(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    cheap = {"max_queue": 1, "engine": "vllm", "metrics_url": f"{cheap_server.url}/metrics"}
    proxy = start_proxy(policy(tmp_path, cheap_server, fake_upstream, cheap=cheap))

    async def load_and_probe() -> Any:
        busy = [  # two requests held by the server itself (not through tierwise)
            asyncio.create_task(
                asyncio.to_thread(
                    httpx.post,
                    f"{cheap_server.url}/v1/chat/completions",
                    json={"model": "x", "messages": [{"role": "user", "content": "[[sleep:3]]"}]},
                    timeout=10,
                )
            )
            for _ in range(2)
        ]
        await asyncio.sleep(1.2)  # the proxy polls every 0.5 s
        client = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
        try:
            return await client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": EASY}]
            )
        finally:
            await client.close()
            await asyncio.gather(*busy)

    reply = asyncio.run(load_and_probe())
    assert reply.headers["x-tierwise-reason"] == "fallback:cheap_saturated"
    assert httpx.get(f"{proxy.url}/readyz").json()["health"]["cheap"]["load"] is not None


def test_first_token_timeout_falls_back_before_any_byte_is_sent(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    cheap = {"first_token_timeout_s": 0.5}
    proxy = start_proxy(policy(tmp_path, cheap_server, fake_upstream, cheap=cheap))
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="auto",
        stream=True,
        messages=[{"role": "user", "content": "[[sleep:2@cheap-model]]"}],
    ) as response:
        assert response.headers["x-tierwise-tier"] == "frontier"
        assert response.headers["x-tierwise-reason"] == "fallback:cheap_timeout"
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text.endswith("from-fake:frontier-model")


def test_escalation_of_empty_and_invalid_json_answers(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(policy(tmp_path, cheap_server, fake_upstream, routing={"escalate": True}))
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    empty = ask(client, "[[empty:1@cheap-model]]")
    assert empty.headers["x-tierwise-tier"] == "frontier"
    assert empty.headers["x-tierwise-reason"] == "escalated:empty"
    assert empty.headers["x-tierwise-escalated-from"] == "cheap"
    not_json = ask(client, "give json", response_format={"type": "json_object"})
    assert not_json.headers["x-tierwise-reason"] == "escalated:invalid_json"
    fine = ask(client)
    assert fine.headers["x-tierwise-tier"] == "cheap"


def test_local_only_requests_never_leave_the_premises(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(policy(tmp_path, cheap_server, fake_upstream))
    client = openai_client(
        base_url=f"{proxy.url}/v1",
        api_key="k",
        max_retries=0,
        default_headers={"x-tierwise-local-only": "true"},
    )
    hard = "Prove step by step that the integral of x^2 from 0 to 1 is 1/3, then write python code."
    reply = ask(client, hard)
    assert (reply.headers["x-tierwise-tier"], reply.headers["x-tierwise-reason"]) == (
        "cheap",
        "local_only",
    )
    cheap_server.stop()
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, hard)
    assert caught.value.status_code == 502  # no fallback to the frontier


HARD = "Prove step by step that the integral of x^2 from 0 to 1 is 1/3, then write python code."
KEY_VAR = "TIERWISE_TEST_FRONTIER_KEY"  # never set: the frontier's key is "missing"
MISSING = f"{KEY_VAR} is not set (tiers.frontier.api_key_env)"


def _frontier_calls(upstream: ServerProcess) -> int:
    by_model: dict[str, int] = httpx.get(f"{upstream.url}/_stats").json()["by_model"]
    return by_model.get("frontier-model", 0)


def test_a_missing_key_is_named_pinned_requests_fail_and_auto_falls_back_with_a_warning(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(
        policy(tmp_path, cheap_server, fake_upstream, frontier={"api_key_env": KEY_VAR})
    )
    assert proxy.log is not None
    started = proxy.log.read_text()
    assert f"tier frontier: {KEY_VAR} is not set" in started  # said at start, not at 1st call
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    before = _frontier_calls(fake_upstream)

    with pytest.raises(openai.InternalServerError) as pinned:
        ask(client, model="frontier")  # pinned: never answered by the cheap model
    assert pinned.value.status_code == 502
    assert MISSING in pinned.value.message
    assert pinned.value.response.headers["x-tierwise-tier"] == "frontier"

    fell_back = ask(client, HARD)  # auto, scored hard: the frontier, which cannot answer
    assert fell_back.headers["x-tierwise-tier"] == "cheap"
    assert fell_back.headers["x-tierwise-reason"] == "fallback:frontier_error"
    assert fell_back.headers["x-tierwise-fallback"] == f"frontier:error;cause={MISSING}"
    assert fell_back.parse().choices[0].message.content.endswith("from-local:cheap-model")

    messages = anthropic_client(base_url=proxy.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as native:
        messages.messages.create(
            model="frontier", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert MISSING in native.value.message
    assert _frontier_calls(fake_upstream) == before  # no keyless call went out

    deadline = time.monotonic() + 5
    while "falling back to cheap" not in proxy.log.read_text():
        assert time.monotonic() < deadline, "no fallback warning in the proxy's log"
        time.sleep(0.05)
    logged = proxy.log.read_text()[len(started) :]
    rid = fell_back.headers["x-tierwise-request-id"]
    assert f"request {rid}: tier frontier error ({MISSING}); falling back to cheap" in logged
    assert "routing.fallback_pinned is off" in logged  # why the pinned one was not


def test_fallback_pinned_lets_pinned_requests_fall_back(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(
        policy(
            tmp_path,
            cheap_server,
            fake_upstream,
            frontier={"api_key_env": KEY_VAR},
            routing={"fallback_pinned": True},
        )
    )
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    reply = ask(client, model="frontier")
    assert reply.headers["x-tierwise-tier"] == "cheap"
    assert reply.headers["x-tierwise-fallback"] == f"frontier:error;cause={MISSING}"


def test_without_fallback_the_error_names_the_variable(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    routing = {"fallback": False}
    frontier = {"api_key_env": KEY_VAR}
    proxy = start_proxy(
        policy(tmp_path, cheap_server, fake_upstream, frontier=frontier, routing=routing)
    )
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, HARD)
    assert MISSING in caught.value.message
    for _ in range(3):  # the breaker does not hide the cause either
        with pytest.raises(openai.InternalServerError) as again:
            ask(client, HARD)
        assert MISSING in again.value.message


def test_refused_credentials_name_the_variable(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(
        policy(tmp_path, cheap_server, fake_upstream, frontier={"api_key_env": KEY_VAR}),
        env={KEY_VAR: "sk-wrong"},
    )
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "[[status:401@frontier-model]]", model="frontier")
    assert "HTTP 401" in caught.value.message and KEY_VAR in caught.value.message


def test_a_pinned_request_is_not_served_by_the_other_tier(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    routing = {"aliases": {"fast": "cheap"}}
    proxy = start_proxy(policy(tmp_path, cheap_server, fake_upstream, routing=routing))
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    cheap_server.stop()
    before = _frontier_calls(fake_upstream)
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, model="fast")  # an alias of the cheap tier pins it too
    assert caught.value.response.headers["x-tierwise-tier"] == "cheap"
    assert _frontier_calls(fake_upstream) == before
    assert ask(client).headers["x-tierwise-tier"] == "frontier"  # auto still falls back


def test_policy_check_names_a_missing_key(
    fake_upstream: ServerProcess, cheap_server: ServerProcess, tmp_path: Path
) -> None:
    path = policy(tmp_path, cheap_server, fake_upstream, frontier={"api_key_env": KEY_VAR})
    checked = subprocess.run(
        [sys.executable, "-m", "router.cli", "policy", "check", str(path)],
        env=guarded_env({"COLUMNS": "200"}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    text = " ".join(checked.stdout.split())
    assert f"tier frontier: {KEY_VAR} is not set" in text
    assert "requests pinned to frontier fail with 502" in text
