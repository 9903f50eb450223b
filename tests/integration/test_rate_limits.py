"""Rate limits per key and team through real proxies: requests per minute with 429,
`Retry-After` and `x-ratelimit-*` (OpenAI-shaped on chat completions, Anthropic-shaped on
/v1/messages), tokens per minute, and one limit shared by two replicas on one Redis."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.conftest import write_policy

KEYS = "alice=key-a,bob=key-b"


def _fresh_minute() -> None:
    """Start with at least 20 s left in the UTC minute, so the window does not roll over while
    a test counts requests (the limits are per minute of the clock)."""
    left = 60 - time.time() % 60
    if left < 20:
        time.sleep(left + 0.2)


def _policy(tmp: Path, upstream: str, limits: list[dict[str, Any]]) -> Path:
    return write_policy(
        tmp / "p.yaml",
        upstream,
        rate_limits=limits,
        access={"open": False, "keys_env": "TIERWISE_API_KEYS", "teams": {"team-x": ["alice"]}},
    )


def _client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


@contextlib.contextmanager
def _alice_and_bob(url: str) -> Iterator[tuple[openai.OpenAI, openai.OpenAI]]:
    alice, bob = _client(url, "key-a"), _client(url, "key-b")
    try:
        yield alice, bob
    finally:
        alice.close()
        bob.close()


def _ask(client: openai.OpenAI, **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="cheap", messages=[{"role": "user", "content": "hi"}], **kw
    )


def test_requests_per_minute_per_key_in_both_api_shapes(
    fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, fake_upstream.url, [{"scope": "key", "requests_per_min": 3}])
    port = free_port()
    env = {"TIERWISE_LEDGER_URL": "memory://", "TIERWISE_API_KEYS": KEYS}
    with ServerProcess(proxy_command(policy, port), port, env=env) as server:
        _fresh_minute()
        with _alice_and_bob(server.url) as (alice, bob):
            for _ in range(3):
                ok = _ask(alice)
                assert ok.headers["x-ratelimit-limit-requests"] == "3"
            with pytest.raises(openai.RateLimitError) as refused:
                _ask(alice)
            headers = refused.value.response.headers
            assert 1 <= int(headers["retry-after"]) <= 60
            assert headers["x-ratelimit-remaining-requests"] == "0"
            assert "3 requests per minute for key alice" in str(refused.value)
            assert _ask(bob).status_code == 200  # each key has its own limit
            messages = anthropic.Anthropic(base_url=server.url, api_key="key-a", max_retries=0)
            try:
                with pytest.raises(anthropic.RateLimitError) as shaped:
                    messages.messages.create(
                        model="cheap", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
                    )
            finally:
                messages.close()
            assert shaped.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_tokens_per_minute_per_team(fake_upstream: ServerProcess, tmp_path: Path) -> None:
    policy = _policy(tmp_path, fake_upstream.url, [{"scope": "team", "tokens_per_min": 150}])
    port = free_port()
    env = {"TIERWISE_LEDGER_URL": "memory://", "TIERWISE_API_KEYS": KEYS}
    with ServerProcess(proxy_command(policy, port), port, env=env) as server:
        _fresh_minute()
        with _alice_and_bob(server.url) as (alice, bob):
            with pytest.raises(openai.RateLimitError) as big:
                _ask(alice, max_tokens=400)  # its estimate alone is over the team's minute
            assert big.value.response.headers["x-ratelimit-limit-tokens"] == "150"
            small = _ask(alice, max_tokens=20)
            assert small.headers["x-ratelimit-limit-tokens"] == "150"
            assert _ask(bob, max_tokens=400).status_code == 200  # bob is in no team


def test_one_limit_holds_across_two_replicas_on_redis(
    fake_upstream: ServerProcess, tmp_path: Path, redis_url: str
) -> None:
    policy = _policy(tmp_path, fake_upstream.url, [{"scope": "key", "requests_per_min": 4}])
    env = {"TIERWISE_LEDGER_URL": redis_url, "TIERWISE_API_KEYS": KEYS}
    ports = [free_port(), free_port()]
    servers = [
        ServerProcess(
            proxy_command(policy, p), p, env=env | {"TIERWISE_SPOOL_DIR": str(tmp_path / str(p))}
        )
        for p in ports
    ]
    with servers[0], servers[1]:
        _fresh_minute()
        clients = [_client(s.url, "key-a") for s in servers]
        try:
            for i in range(4):
                assert _ask(clients[i % 2]).status_code == 200
            for client in clients:
                with pytest.raises(openai.RateLimitError):
                    _ask(client)
        finally:
            for client in clients:
                client.close()
