"""`routing.target_frontier_share` resolves to a threshold from the classifier's reference."""

from __future__ import annotations

import httpx
import pytest

from classifiers import load_default, threshold_for_share
from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy


def test_target_share_sets_the_threshold(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    policy = write_policy(
        tmp_path_factory.mktemp("share") / "policy.yaml",
        fake_upstream.url,
        routing={"target_frontier_share": 0.2},
    )
    proxy = start_proxy(policy)
    expected = threshold_for_share(load_default(), 0.2)
    assert 0.0 < expected < 1.0
    assert httpx.get(f"{proxy.url}/readyz").json()["threshold"] == pytest.approx(expected)
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert float(response.headers["x-tierwise-threshold"]) == pytest.approx(expected, abs=1e-4)
