"""Circuit breakers open on a tier being unhealthy, not on requests that fail by themselves
(issue 15 item 1), through the real proxy and real fake upstream processes.

Prompts that fail on both tiers (a 500 for that prompt, an answer slower than the tiers'
`total_timeout_s`), 4xx answers and 429s never open a breaker; a dead tier, a tier that answers
500 to everything while the other tier answers, and a tier whose failure rate is over
`failure_rate` (with `min_requests` in the window) still do."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy

EASY = "hi there"
HARD = "Prove step by step that the integral of x^2 from 0 to 1 is 1/3, then write python code."
BROKEN = "[[status:500]]"  # both fakes answer this prompt with a 500
SLOW = "[[sleep:1.5]]"  # ... and this one after the tiers' 1 s total_timeout_s


def _policy(tmp: Path, cheap: ServerProcess, frontier: ServerProcess, **breaker: Any) -> Path:
    tier = {"price": "free", "total_timeout_s": 1.0, "timeout_s": 5}
    return write_policy(
        tmp / "p.yaml",
        cheap.url,
        tiers={
            "cheap": {
                "model": "openai/cheap-model",
                "api_base": f"{cheap.url}/v1",
                "local": True,
                **tier,
            },
            "frontier": {
                "model": "openai/frontier-model",
                "api_base": f"{frontier.url}/v1",
                **tier,
            },
        },
        routing={
            "threshold": 0.5,
            "breaker": {"failures": 5, "cooldown_s": 10, **breaker},
        },
    )


def _post(client: httpx.Client, content: str, model: str = "auto") -> httpx.Response:
    return client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}]},
    )


def _breakers(proxy: ServerProcess) -> dict[str, str]:
    health = httpx.get(f"{proxy.url}/readyz").json()["health"]
    return {tier: health[tier]["breaker"] for tier in ("cheap", "frontier")}


def _prompt(i: int) -> tuple[str, str]:
    """(kind, prompt) of request `i`: about 17 % fail on both tiers, half the rest are hard."""
    base = f"{HARD if i % 2 else EASY} #{i}"
    if i % 10 == 3:
        return "broken", f"{base} {BROKEN}"
    if i % 12 == 7:
        return "slow", f"{base} {SLOW}"
    return "healthy", base


def test_prompts_that_fail_on_both_tiers_never_open_a_breaker(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(_policy(tmp_path, cheap_server, fake_upstream))
    with httpx.Client(base_url=proxy.url, headers={"authorization": "Bearer k"}) as client:
        for _ in range(8):  # a client resending its broken request: 8 in a row on both tiers
            assert _post(client, f"{EASY} {BROKEN}").status_code == 502
        assert _breakers(proxy) == {"cheap": "closed", "frontier": "closed"}

    async def traffic() -> list[tuple[str, httpx.Response]]:
        gate = asyncio.Semaphore(8)
        async with httpx.AsyncClient(
            base_url=proxy.url, headers={"authorization": "Bearer k"}, timeout=30
        ) as client:

            async def one(i: int) -> tuple[str, httpx.Response]:
                kind, prompt = _prompt(i)
                async with gate:
                    response = await client.post(
                        "/v1/chat/completions",
                        json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
                    )
                return kind, response

            return await asyncio.gather(*(one(i) for i in range(120)))

    replies = asyncio.run(traffic())
    kinds = Counter(kind for kind, _ in replies)
    assert kinds["broken"] + kinds["slow"] >= 18  # 15 % or more of the prompts fail
    healthy = [r for kind, r in replies if kind == "healthy"]
    assert [r.status_code for r in healthy] == [200] * len(healthy)
    assert not [r for r in healthy if "x-tierwise-fallback" in r.headers]  # first tier answered
    assert {r.headers["x-tierwise-tier"] for r in healthy} == {"cheap", "frontier"}
    assert {r.status_code for kind, r in replies if kind == "broken"} == {502}
    assert {r.status_code for kind, r in replies if kind == "slow"} == {504}
    assert _breakers(proxy) == {"cheap": "closed", "frontier": "closed"}


def test_4xx_answers_and_429s_never_open_a_breaker(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(_policy(tmp_path, cheap_server, fake_upstream, failures=2))
    with httpx.Client(base_url=proxy.url, headers={"authorization": "Bearer k"}) as client:
        for i in range(10):  # a client field the upstream rejects, on each tier
            assert _post(client, f"{EASY} {i} [[status:400]]").status_code == 400
            assert _post(client, f"{HARD} {i} [[status:422]]").status_code == 422
            assert _post(client, f"{EASY} {i} [[status:400]]", model="cheap").status_code == 400
        for i in range(4):  # rate-limited on both tiers: passed through, not a tier failure
            assert _post(client, f"{EASY} {i} [[status:429]]").status_code == 429
        assert _breakers(proxy) == {"cheap": "closed", "frontier": "closed"}
        fine = _post(client, EASY)
        assert fine.status_code == 200 and "x-tierwise-fallback" not in fine.headers


def test_a_dead_tier_still_opens_its_breaker(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(_policy(tmp_path, cheap_server, fake_upstream))
    cheap_server.stop()  # connection refused
    with httpx.Client(base_url=proxy.url, headers={"authorization": "Bearer k"}) as client:
        reasons = [_post(client, EASY).headers["x-tierwise-reason"] for _ in range(6)]
    assert reasons == ["fallback:cheap_error"] * 5 + ["fallback:cheap_breaker_open"]
    assert _breakers(proxy) == {"cheap": "open", "frontier": "closed"}


def test_a_tier_failing_everything_while_the_other_answers_opens(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(_policy(tmp_path, cheap_server, fake_upstream))
    with httpx.Client(base_url=proxy.url, headers={"authorization": "Bearer k"}) as client:
        replies = [_post(client, f"{EASY} {i} [[status:500@cheap-model]]") for i in range(6)]
    assert [r.status_code for r in replies] == [200] * 6  # the frontier answered each
    reasons = [r.headers["x-tierwise-reason"] for r in replies]
    assert reasons == ["fallback:cheap_error"] * 5 + ["fallback:cheap_breaker_open"]
    assert _breakers(proxy) == {"cheap": "open", "frontier": "closed"}


def test_a_failure_rate_over_the_window_opens_without_five_in_a_row(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    breaker = {"failure_rate": 0.5, "min_requests": 10, "window_s": 30}
    proxy = start_proxy(_policy(tmp_path, cheap_server, fake_upstream, **breaker))
    sick = "[[status:500@cheap-model]]"  # 3 of every 5 cheap calls fail, at most 2 in a row
    reasons = []
    with httpx.Client(base_url=proxy.url, headers={"authorization": "Bearer k"}) as client:
        for i in range(20):
            reply = _post(client, f"{EASY} {i} {sick if i % 5 in (0, 2, 4) else ''}")
            assert reply.status_code == 200
            reasons.append(reply.headers["x-tierwise-reason"])
            if reasons[-1] == "fallback:cheap_breaker_open":
                break
    # the 10th call (6 failures of 10) opens it; the 11th request finds it open
    assert len(reasons) == 11 and reasons[-1] == "fallback:cheap_breaker_open", reasons
    assert _breakers(proxy)["cheap"] == "open"


def test_bad_prompts_never_open_the_only_tier_left(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    """With the cheap tier dead, prompts that fail on the frontier by themselves cannot be
    checked against another tier: they count towards its failure rate, never its streak."""
    proxy = start_proxy(_policy(tmp_path, cheap_server, fake_upstream, min_requests=20))
    cheap_server.stop()
    with httpx.Client(base_url=proxy.url, headers={"authorization": "Bearer k"}) as client:
        for i in range(6):  # each shape of request in turn, 18 failures in a row on the frontier
            assert _post(client, f"{EASY} {i} {BROKEN}").status_code == 502  # cheap first
            assert _post(client, f"{HARD} {i} {BROKEN}").status_code == 502  # frontier first
            assert _post(client, f"{HARD} {i} {BROKEN}", model="frontier").status_code == 502
        assert _breakers(proxy) == {"cheap": "open", "frontier": "closed"}
        fine = _post(client, HARD)
        assert fine.status_code == 200 and fine.headers["x-tierwise-tier"] == "frontier"


def test_a_tier_failing_everything_with_no_fallback_still_opens_on_its_rate(
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    cheap_server: ServerProcess,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(_policy(tmp_path, cheap_server, fake_upstream, min_requests=8))
    sick = "[[status:500@frontier-model]]"
    with httpx.Client(base_url=proxy.url, headers={"authorization": "Bearer k"}) as client:
        details = [
            _post(client, f"{HARD} {i} {sick}", model="frontier").json()["error"]["message"]
            for i in range(9)
        ]
    assert _breakers(proxy)["frontier"] == "open"
    assert "circuit breaker open" not in details[7] and "circuit breaker open" in details[8]
