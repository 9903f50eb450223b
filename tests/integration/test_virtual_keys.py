"""Virtual API keys across two replicas on one redis-server: created with `tierwise keys create`
on one, used through the other with the openai SDK, limited to their tiers, listed without any
secret, stored only as salted hashes, and refused everywhere within 2 seconds of a revoke;
static keys keep working beside them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.conftest import write_policy
from tests.integration.test_policy_cli import tierwise


def _ask(url: str, key: str, model: str = "auto", text: str = "hi") -> Any:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}]
        )
        assert raw.headers["x-tierwise-tier"]
        return raw
    finally:
        client.close()


def test_keys_created_on_one_replica_work_on_the_other_until_revoked(
    fake_upstream: ServerProcess, tmp_path: Path, redis_url: str
) -> None:
    policy = write_policy(
        tmp_path / "p.yaml",
        fake_upstream.url,
        routing={"threshold": 0.0},  # auto goes to the frontier unless a key says otherwise
        access={"open": False, "keys_env": "TIERWISE_API_KEYS", "virtual_keys": True,
                "admin_keys_env": "TIERWISE_ADMIN_KEYS"},
    )  # fmt: skip
    env = {"TIERWISE_LEDGER_URL": redis_url, "TIERWISE_API_KEYS": "static=st-key",
           "TIERWISE_ADMIN_KEYS": "ops=adm"}  # fmt: skip
    ports = [free_port(), free_port()]
    replicas = [
        ServerProcess(
            proxy_command(policy, p), p, env=env | {"TIERWISE_SPOOL_DIR": str(tmp_path / str(p))}
        )
        for p in ports
    ]
    with replicas[0] as a, replicas[1] as b:
        admin = {"TIERWISE_URL": a.url, "TIERWISE_ADMIN_KEY": "adm"}
        made = tierwise("keys", "create", "--label", "billing-app", "--team", "finance", env=admin)
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        assert key.startswith("tw-")
        limited = tierwise("keys", "create", "--label", "cheap-only", "--tier", "cheap", env=admin)
        small = limited.stdout.strip()

        reply = _ask(b.url, key)  # the other replica knows it at once
        assert reply.headers["x-tierwise-tier"] == "frontier"
        assert _ask(b.url, small).headers["x-tierwise-tier"] == "cheap"  # auto kept on its tier
        assert _ask(b.url, small).headers["x-tierwise-reason"] == "key_tiers"
        with pytest.raises(openai.PermissionDeniedError):
            _ask(b.url, small, model="frontier")
        assert _ask(b.url, "st-key").status_code == 200  # static keys still work
        with pytest.raises(openai.AuthenticationError):
            _ask(b.url, key[:-2] + "xx")  # a wrong secret for a real id

        requests = httpx.get(f"{b.url}/admin/requests", headers={"authorization": "Bearer adm"})
        callers = {(r["caller"], r["team"]) for r in requests.json()["requests"]}
        assert ("billing-app", "finance") in callers

        listed = tierwise("keys", "list", "--json", env=admin)
        assert listed.returncode == 0
        secret = key.split("-", 2)[2]
        assert secret not in listed.stdout and "digest" not in listed.stdout
        client = redis.Redis(host="127.0.0.1", port=6379, db=13)
        try:
            hash_key = f"{{{redis_url.split('prefix=')[1]}}}:keys"
            values = client.hgetall(hash_key).values()
            stored = b"".join(v if isinstance(v, bytes) else v.encode() for v in values)
        finally:
            client.close()
        assert stored and secret.encode() not in stored and b"salt" in stored

        key_id = key.split("-")[1]
        revoked = tierwise("keys", "revoke", key_id, env=admin)
        assert revoked.returncode == 0, revoked.stderr
        start = time.monotonic()
        while True:
            try:
                _ask(b.url, key)
            except openai.AuthenticationError as exc:
                assert "revoked" in str(exc)
                break
            assert time.monotonic() - start < 2.0, "still accepted 2 s after the revoke"
            time.sleep(0.05)
        with pytest.raises(openai.AuthenticationError):
            _ask(a.url, key)


def test_an_expired_key_is_refused(fake_upstream: ServerProcess, tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path / "p.yaml",
        fake_upstream.url,
        access={"open": False, "keys_env": "TIERWISE_API_KEYS", "virtual_keys": True},
    )
    port = free_port()
    env = {
        "TIERWISE_LEDGER_URL": "memory://",
        "TIERWISE_API_KEYS": "",
        "TIERWISE_ADMIN_KEYS": "adm",
    }
    with ServerProcess(proxy_command(policy, port), port, env=env) as server:
        made = httpx.post(
            f"{server.url}/admin/keys",
            json={"label": "short", "expires_in_s": 1},
            headers={"authorization": "Bearer adm"},
        )
        assert made.status_code == 201 and "digest" not in made.json()
        assert _ask(server.url, made.json()["key"]).status_code == 200
        time.sleep(1.2)
        with pytest.raises(openai.AuthenticationError) as expired:
            _ask(server.url, made.json()["key"])
        assert "expired" in str(expired.value)
        bad = httpx.post(
            f"{server.url}/admin/keys", json={"label": "x", "colour": "red"},
            headers={"authorization": "Bearer adm"},
        )  # fmt: skip
        assert bad.status_code == 400 and "colour" in bad.text
