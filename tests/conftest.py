"""Shared fixtures: the guard against real providers, real fake-upstream and proxy processes.

`TIERWISE_TEST_CLOCK=<ISO time>` runs the session with the wall clock moved there (and ticking;
`time-machine`): `tests/test_clock_shift.py` uses it to prove that no test depends on today's
date and that components given a simulated clock never consult a second, real one.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.testing.processes import ServerProcess, free_port, proxy_command, upstream_command
from tests.sdk import close_all

_TRAVELLER = pytest.StashKey[Any]()

_real_connect = socket.socket.connect


def pytest_configure(config: pytest.Config) -> None:
    when = os.environ.get("TIERWISE_TEST_CLOCK")
    if when:
        import time_machine

        traveller = time_machine.travel(datetime.fromisoformat(when), tick=True)
        traveller.start()
        config.stash[_TRAVELLER] = traveller


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = config.stash.get(_TRAVELLER, None)
    if traveller is not None:
        traveller.stop()


def pytest_report_header(config: pytest.Config) -> str | None:
    when = os.environ.get("TIERWISE_TEST_CLOCK")
    return f"wall clock shifted to {when} (TIERWISE_TEST_CLOCK)" if when else None


def _loopback_only(self: socket.socket, address: Any) -> None:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and self.family in (socket.AF_INET, socket.AF_INET6):
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ConnectionRefusedError(f"tests may not reach {host}: only 127.0.0.1 is allowed")
    _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_real_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes a real (paid) provider call impossible: no keys, no non-loopback sockets."""
    for name in list(os.environ):
        if name.endswith("_API_KEY") and not name.startswith("TIERWISE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(scope="session", autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    close_all()


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture
def cheap_server(logs_dir: Path) -> Iterator[ServerProcess]:
    """A fake upstream of its own (model `local`) for one test, as the cheap tier."""
    port = free_port()
    server = ServerProcess(
        upstream_command(port, name="local"), port, "/_stats", log=logs_dir / f"cheap_{port}.log"
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def fake_upstream(logs_dir: Path) -> Iterator[ServerProcess]:
    """One fake OpenAI/Anthropic-compatible upstream process for the whole session."""
    port = free_port()
    with ServerProcess(
        upstream_command(port), port, "/_stats", log=logs_dir / "fake_upstream.log"
    ) as server:
        yield server


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A `redis://` store URL on the local Redis (DB 13) with a key prefix of its own, whose
    keys are deleted afterwards."""
    import uuid

    import redis

    prefix = f"tierwise-test-{uuid.uuid4().hex[:8]}"
    yield f"redis://127.0.0.1:6379/13?prefix={prefix}"
    client = redis.Redis(host="127.0.0.1", port=6379, db=13)
    try:
        for key in client.scan_iter(f"{{{prefix}}}*"):
            client.delete(key)
    finally:
        client.close()


def write_policy(path: Path, upstream_url: str, **overrides: Any) -> Path:
    """A two-tier policy pointing both tiers at the fake upstream; `overrides` replace sections."""
    policy: dict[str, Any] = {
        "tiers": {
            "cheap": {
                "model": "openai/cheap-model",
                "api_base": f"{upstream_url}/v1",
                "local": True,
                "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.1},
            },
            "frontier": {
                "model": "openai/frontier-model",
                "api_base": f"{upstream_url}/v1",
                "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
            },
        },
        "routing": {"threshold": 0.5, "aliases": {"gpt-4o": "auto", "fast": "cheap"}},
        "access": {"open": True},
    }
    policy.update(overrides)
    path.write_text(yaml.safe_dump(policy))
    return path


StartProxy = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def start_proxy(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[StartProxy]:
    """Start a real proxy process (`tierwise serve`) for a policy; stopped at module end."""
    started: list[ServerProcess] = []

    def start(policy: Path, env: dict[str, str] | None = None) -> ServerProcess:
        port = free_port()
        log = logs_dir / f"proxy_{port}.log"
        env = {"TIERWISE_LEDGER_URL": "memory://", **(env or {})}
        server = ServerProcess(proxy_command(policy, port), port, env=env, log=log).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
