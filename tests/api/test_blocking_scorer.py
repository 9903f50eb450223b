"""A scorer that declares `blocking = True` is scored off the event loop.

The real app (`create_app`) is served by uvicorn on a thread of this process, so the test can
give it a scorer class of its own through the state's `scoring` (the seam a hot reload uses),
and is called over real HTTP with the openai SDK.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import uvicorn

from router.server.app import create_app
from router.server.state import ProxyState
from router.settings import Settings
from router.testing.processes import ServerProcess, free_port
from tests.conftest import write_policy
from tests.sdk import openai_client


class SlowScorer:
    """Sleeps in `difficulty` and records the thread it ran on. The first two calls wait for
    each other at a barrier: that can only succeed if two scorings are in flight at once, off
    the event loop (on the loop the first would block it and the barrier would time out)."""

    name = "slow-test"
    blocking = True

    def __init__(self) -> None:
        self.threads: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(2, timeout=20)

    def difficulty(self, text: str) -> float:
        with self._lock:
            self.threads.append((threading.get_ident(), threading.current_thread().name))
            first_two = len(self.threads) <= 2
        if first_two:
            self._barrier.wait()
        time.sleep(0.05)
        return 0.9


class InProcessProxy:
    def __init__(self, policy: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = Settings(policy=policy, ledger_url="memory://", port=self.port)
        self.app = create_app(settings)
        self.state: ProxyState = self.app.app.state.proxy  # type: ignore[attr-defined]
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="proxy-loop")

    def __enter__(self) -> InProcessProxy:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "proxy did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def proxy(fake_upstream: ServerProcess, tmp_path: Path) -> Iterator[InProcessProxy]:
    policy = write_policy(tmp_path / "policy.yaml", fake_upstream.url)
    with InProcessProxy(policy) as running:
        yield running


def test_a_blocking_scorer_runs_off_the_event_loop(proxy: InProcessProxy) -> None:
    scorer = SlowScorer()
    proxy.state.current.scoring = dataclasses.replace(
        proxy.state.current.scoring, scorer=scorer, blocking=True
    )
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)

    def ask(i: int) -> str:
        reply = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": f"question {i}"}]
        )
        return reply.headers["x-tierwise-difficulty"]

    with ThreadPoolExecutor(5) as pool:
        difficulties = list(pool.map(ask, range(5)))

    assert difficulties == ["0.9000"] * 5
    loop_thread = proxy.thread.ident
    assert len(scorer.threads) == 5
    assert all(ident != loop_thread for ident, _ in scorer.threads)
    assert all(name.startswith("tierwise-scorer") for _, name in scorer.threads)
    pool_of_state = proxy.state.scorer_pool
    assert pool_of_state is not None
    proxy.__exit__()  # the app's shutdown closes its scorer threads
    with pytest.raises(RuntimeError):
        pool_of_state.submit(scorer.difficulty, "after shutdown")


def test_the_fast_scorer_stays_inline(proxy: InProcessProxy) -> None:
    assert proxy.state.current.scoring.blocking is False
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.headers["x-tierwise-tier"] == "cheap"
    assert proxy.state.scorer_pool is None  # no thread was ever started for it
