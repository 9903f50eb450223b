"""Replicas on one redis-server share the applied policy: a version applied on one is served by
the others within 2 seconds, a replica started later comes up on it (not on its own file), a
rollback converges the same way, and a stale If-Match is answered 412 on any replica."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.integration.test_policy_reload import ADMIN, policy_text, served_version

REDIS_DB = 13


def _replica(path: Path, redis_url: str, log: Path) -> ServerProcess:
    port = free_port()
    env = {
        "TIERWISE_LEDGER_URL": redis_url,
        "TIERWISE_ADMIN_KEYS": "ops=adm-key",
        "TIERWISE_SPOOL_DIR": str(log.parent / f"spool-{port}"),
    }
    return ServerProcess(proxy_command(path, port), port, env=env, log=log).start()


def _converges(url: str, version: int, limit_s: float = 2.0) -> float:
    start = time.monotonic()
    while served_version(url) != version:
        elapsed = time.monotonic() - start
        assert elapsed < limit_s, f"{url} still serves {served_version(url)}, not {version}"
        time.sleep(0.02)
    return time.monotonic() - start


def test_replicas_converge_on_an_applied_version_and_a_rollback(
    fake_upstream: ServerProcess, redis_url: str, tmp_path: Path
) -> None:
    upstream = fake_upstream.url
    files = {}
    for name in ("a", "b", "c"):
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(policy_text(upstream, f"file-{name}"), encoding="utf-8")
    first = _replica(files["a"], redis_url, tmp_path / "a.log")
    second = _replica(files["b"], redis_url, tmp_path / "b.log")
    try:
        assert served_version(first.url) == served_version(second.url) == 1
        one = httpx.get(f"{second.url}/admin/policy", headers=ADMIN).json()
        assert one["policy"]["tiers"]["cheap"]["model"] == "openai/cheap-file-a"  # the store's

        put = httpx.put(
            f"{first.url}/admin/policy", content=policy_text(upstream, "v2"), headers=ADMIN
        )
        assert put.status_code == 200 and put.json()["version"] == 2
        assert _converges(second.url, 2) < 2.0
        answer = httpx.post(
            f"{second.url}/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.headers["x-tierwise-policy-version"] == "2"
        assert answer.json()["choices"][0]["message"]["content"].endswith(":cheap-v2")

        late = _replica(files["c"], redis_url, tmp_path / "c.log")
        try:
            assert served_version(late.url) == 2  # the applied version, not its file
            stale = httpx.put(
                f"{late.url}/admin/policy",
                content=policy_text(upstream, "v3"),
                headers={**ADMIN, "if-match": '"1"'},
            )
            assert stale.status_code == 412 and stale.headers["etag"] == '"2"'

            back = httpx.post(f"{second.url}/admin/policy/rollback?to=1", headers=ADMIN)
            assert back.status_code == 200 and back.json()["version"] == 3
            for replica in (first, late):
                assert _converges(replica.url, 3) < 2.0
            served = httpx.get(f"{late.url}/admin/policy", headers=ADMIN).json()
            assert served["source"] == "rollback:1"
            assert served["policy"]["tiers"]["cheap"]["model"] == "openai/cheap-file-a"
        finally:
            late.stop()
    finally:
        first.stop()
        second.stop()
