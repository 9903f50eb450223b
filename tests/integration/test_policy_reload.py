"""Policy hot reload under load: a real proxy process serves continuous openai-SDK traffic while
policies are applied by file edit, SIGHUP and the admin API (valid and invalid ones, a stale
If-Match, a rollback). No request may fail, and every answer's `x-tierwise-policy-version`
names the version whose policy explains it: each version's text routes to a cheap model of its
own name, which the fake upstream echoes in the answer."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openai import OpenAI

from router.testing.processes import ServerProcess, free_port, proxy_command

ADMIN = {"authorization": "Bearer adm-key"}


def policy_text(upstream: str, tag: str) -> str:
    """Every request to the cheap tier (threshold 1.0: `auto` prompts here all score below),
    whose model name carries `tag`."""
    return yaml.safe_dump(
        {
            "tiers": {
                "cheap": {
                    "model": f"openai/cheap-{tag}",
                    "api_base": f"{upstream}/v1",
                    "local": True,
                    "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.1},
                },
                "frontier": {
                    "model": "openai/frontier-model",
                    "api_base": f"{upstream}/v1",
                    "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
                },
            },
            "routing": {"threshold": 1.0},
            "budgets": [{"scope": "global", "window": "day", "limit_usd": 100}],
            "access": {"open": True, "admin_keys_env": "TIERWISE_ADMIN_KEYS"},
        }
    )


def write_atomically(path: Path, text: str) -> None:
    """As editors and config managers do: a new file moved over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class Traffic:
    """Threads sending chat completions through the proxy until stopped."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.answers: list[tuple[str, str]] = []  # (policy version header, answered model)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        client = OpenAI(base_url=f"{self.url}/v1", api_key="k", max_retries=0, timeout=10)
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                try:
                    raw = client.chat.completions.with_raw_response.create(
                        model="auto", messages=[{"role": "user", "content": f"hi {i} {n}"}]
                    )
                    content = raw.parse().choices[0].message.content or ""
                    self.answers.append(
                        (raw.headers["x-tierwise-policy-version"], content.split(":")[-1])
                    )
                except Exception as exc:
                    self.failures.append(repr(exc))
        finally:
            client.close()

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def served_version(url: str) -> int:
    reply = httpx.get(f"{url}/admin/policy", headers=ADMIN, timeout=5)
    assert reply.status_code == 200, reply.text
    return int(reply.json()["version"])


def wait_for_version(url: str, version: int, timeout_s: float = 5.0) -> float:
    """Seconds until `url` serves `version`."""
    start = time.monotonic()
    while served_version(url) != version:
        assert time.monotonic() - start < timeout_s, f"version {version} not served in time"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def proxy(fake_upstream: ServerProcess, tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(fake_upstream.url, "a"), encoding="utf-8")
    port = free_port()
    env = {
        "TIERWISE_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "TIERWISE_ADMIN_KEYS": "ops=adm-key",
        "TIERWISE_POLICY_POLL_S": "0.2",
    }
    server = ServerProcess(
        proxy_command(path, port), port, env=env, log=tmp_path / "proxy.log"
    ).start()
    try:
        yield server, path
    finally:
        server.stop()


def test_policies_applied_under_load_drop_no_request_and_explain_every_answer(
    proxy: tuple[ServerProcess, Path], fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    server, path = proxy
    url, upstream = server.url, fake_upstream.url
    assert served_version(url) == 1
    with Traffic(url) as traffic:
        time.sleep(0.5)
        write_atomically(path, policy_text(upstream, "b"))  # 2: a file edit
        wait_for_version(url, 2)
        time.sleep(0.3)
        write_atomically(path, "tiers: {cheap: {model: 7}}\n")  # invalid: refused, 2 stays
        time.sleep(0.8)
        assert served_version(url) == 2
        write_atomically(path, policy_text(upstream, "c"))  # 3: the file, and a SIGHUP
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        wait_for_version(url, 3)
        time.sleep(0.3)
        put = httpx.put(
            f"{url}/admin/policy",
            content=policy_text(upstream, "d"),
            headers={**ADMIN, "content-type": "application/yaml", "if-match": '"3"'},
        )
        assert put.status_code == 200, put.text  # 4: the admin API
        assert put.json()["version"] == 4 and put.headers["etag"] == '"4"'
        assert "tiers.cheap.model: openai/cheap-c -> openai/cheap-d" in put.json()["changes"]
        time.sleep(0.3)
        bad = httpx.put(
            f"{url}/admin/policy",
            content='{"tiers": {"cheap": {"model": "openai/x", "price": {"input_per_mtok": -1}}}}',
            headers={**ADMIN, "content-type": "application/json"},
        )
        assert bad.status_code == 422, bad.text
        paths = {issue["path"] for issue in bad.json()["error"]["issues"]}
        assert "tiers.cheap.price.input_per_mtok" in paths
        stale = httpx.put(
            f"{url}/admin/policy",
            content=policy_text(upstream, "e"),
            headers={**ADMIN, "if-match": '"2"'},
        )
        assert stale.status_code == 412 and stale.json()["error"]["current"] == 4
        back = httpx.post(f"{url}/admin/policy/rollback?to=2", headers=ADMIN)
        assert back.status_code == 200 and back.json()["version"] == 5  # 5: version 2 again
        time.sleep(0.5)

    assert traffic.failures == []
    assert len(traffic.answers) > 50
    texts = {}
    for number in range(1, 6):
        reply = httpx.get(f"{url}/admin/policy?version={number}", headers=ADMIN)
        assert reply.status_code == 200
        texts[str(number)] = yaml.safe_load(reply.json()["text"])["tiers"]["cheap"]["model"]
    for version, model in traffic.answers:
        assert f"openai/{model}" == texts[version], (version, model)
    seen = {version for version, _ in traffic.answers}
    assert seen >= {"1", "2", "3", "4", "5"}, seen
    history = httpx.get(f"{url}/admin/policy/history", headers=ADMIN).json()
    audit = [(v["version"], v["who"], v["source"].split(":")[0]) for v in history["versions"]]
    assert audit == [
        (5, "ops", "rollback"),
        (4, "ops", "api"),
        (3, "file", "file"),
        (2, "file", "file"),
        (1, "file", "file"),
    ]
    log = (tmp_path / "proxy.log").read_text()
    assert "SIGHUP: reloading" in log
    assert "not applied" in log  # the invalid file, with its reasons


def test_a_sighup_reloads_the_file_when_the_watcher_is_slow(
    fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(fake_upstream.url, "a"), encoding="utf-8")
    port = free_port()
    env: dict[str, Any] = {
        "TIERWISE_LEDGER_URL": "memory://",
        "TIERWISE_ADMIN_KEYS": "adm-key",
        "TIERWISE_POLICY_POLL_S": "60",
    }
    with ServerProcess(proxy_command(path, port), port, env=env) as server:
        write_atomically(path, policy_text(fake_upstream.url, "b"))
        time.sleep(0.5)
        assert served_version(server.url) == 1  # not polled yet
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        waited = wait_for_version(server.url, 2)
        assert waited < 2.0
        reply = httpx.get(f"{server.url}/admin/policy", headers=ADMIN).json()
        assert reply["who"].startswith("file") and reply["policy"]["tiers"]["cheap"]["model"] == (
            "openai/cheap-b"
        )


def test_spent_money_carries_over_a_reload_and_a_removed_budget_is_reported(
    proxy: tuple[ServerProcess, Path], fake_upstream: ServerProcess
) -> None:
    server, _ = proxy
    url = server.url
    client = OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    try:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    finally:
        client.close()

    def spent() -> dict[str, float]:
        rows = httpx.get(f"{url}/admin/budgets", headers=ADMIN).json()["budgets"]
        return {row["budget"]: row["spent_usd"] for row in rows}

    deadline = time.monotonic() + 5
    while not spent().get("global-day") and time.monotonic() < deadline:
        time.sleep(0.05)  # the settlement runs after the answer
    before = spent()["global-day"]
    assert before > 0
    renamed = yaml.safe_load(policy_text(fake_upstream.url, "b"))
    renamed["budgets"] = [
        {"scope": "global", "window": "day", "limit_usd": 200},  # same label: carries over
        {"name": "team-cap", "scope": "global", "window": "month", "limit_usd": 50},
    ]
    put = httpx.put(f"{url}/admin/policy", content=yaml.safe_dump(renamed), headers=ADMIN)
    assert put.status_code == 200, put.text
    assert put.json()["budgets"] == {
        "removed": [],
        "added": ["team-cap"],
        "changed": ["global-day"],
    }
    assert spent()["global-day"] == before
    renamed["budgets"] = renamed["budgets"][1:]
    removed = httpx.put(f"{url}/admin/policy", content=yaml.safe_dump(renamed), headers=ADMIN)
    assert removed.json()["budgets"]["removed"] == ["global-day"]
    assert "global-day" not in spent()


def test_a_restart_after_a_file_edit_serves_the_edit_and_otherwise_the_applied_version(
    fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(fake_upstream.url, "a"), encoding="utf-8")
    env = {
        "TIERWISE_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "TIERWISE_ADMIN_KEYS": "ops=adm-key",
    }

    def served() -> tuple[int, str]:
        port = free_port()
        with ServerProcess(proxy_command(path, port), port, env=env) as server:
            reply = httpx.get(f"{server.url}/admin/policy", headers=ADMIN).json()
            if reply["version"] == 1:  # apply a version over the API, then stop
                put = httpx.put(
                    f"{server.url}/admin/policy",
                    content=policy_text(fake_upstream.url, "api"),
                    headers=ADMIN,
                )
                assert put.status_code == 200
            return reply["version"], reply["policy"]["tiers"]["cheap"]["model"]

    assert served() == (1, "openai/cheap-a")
    assert served() == (2, "openai/cheap-api")  # the applied version, not the older file
    time.sleep(0.05)
    write_atomically(path, policy_text(fake_upstream.url, "edited"))  # edited while stopped
    assert served() == (3, "openai/cheap-edited")
    assert served() == (3, "openai/cheap-edited")  # and nothing new on the next start
