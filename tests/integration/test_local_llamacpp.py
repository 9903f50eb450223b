"""End to end with the real embedded model server: `tierwise local up` starts llama.cpp serving
the Gemma 3 270M GGUF, a real tierwise proxy routes its cheap tier there, the official `openai`
SDK calls it (plain and streamed), `tierwise local status` reports it healthy and `local down`
stops it. The model is a small base model: the assertions are on structure and usage, not prose.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.testing.processes import ServerProcess, free_port, guarded_env
from tests.conftest import StartProxy, write_policy
from tests.sdk import openai_client

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed: pip install -e '.[local]' (scripts/test does)",
    ),
    pytest.mark.timeout(600),
]

SERVED = "gemma-3-270m"


def _local(*args: str, state_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "local", *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=guarded_env(),
    )


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("local-state")
    port = free_port()
    up = _local("up", "--port", str(port), state_dir=state_dir)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield {"state_dir": state_dir, "port": port, "url": f"http://127.0.0.1:{port}"}
    finally:
        _local("down", state_dir=state_dir, timeout=60)


@pytest.fixture(scope="module")
def client(
    local_server: dict[str, Any],
    start_proxy: StartProxy,
    fake_upstream: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> openai.OpenAI:
    tiers = {
        "cheap": {
            "model": f"openai/{SERVED}",
            "api_base": f"{local_server['url']}/v1",
            "local": True,
            "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.1},
        },
        "frontier": {
            "model": "openai/frontier-model",
            "api_base": f"{fake_upstream.url}/v1",
            "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
        },
    }
    policy = write_policy(
        tmp_path_factory.mktemp("policy") / "policy.yaml", fake_upstream.url, tiers=tiers
    )
    proxy = start_proxy(policy)
    return openai_client(base_url=f"{proxy.url}/v1", api_key="test", max_retries=0, timeout=120)


def test_up_serves_the_default_gguf(local_server: dict[str, Any]) -> None:
    models = httpx.get(f"{local_server['url']}/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [SERVED]
    again = _local("up", "--port", str(local_server["port"]), state_dir=local_server["state_dir"])
    assert again.returncode == 0 and "already running" in again.stderr


def test_completion_through_tierwise(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="cheap",
        messages=[{"role": "user", "content": "The capital of France is"}],
        max_tokens=8,
        temperature=0,
    )
    assert raw.headers["x-tierwise-tier"] == "cheap"
    assert raw.headers["x-tierwise-model"] == f"openai/{SERVED}"
    assert float(raw.headers["x-tierwise-cost-usd"]) > 0
    completion = raw.parse()
    choice = completion.choices[0]
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= 8


def test_streamed_completion_through_tierwise(client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="cheap",
        messages=[{"role": "user", "content": "Count: one, two, three,"}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-tierwise-tier"] == "cheap"
        chunks = list(response.parse())
    pieces = [c.choices[0].delta.content for c in chunks if c.choices]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert 1 <= len([p for p in pieces if p]) <= 8  # one content chunk per generated token
    assert finishes[-1] in ("stop", "length")
    assert all(c.model == SERVED for c in chunks)
    # llama-cpp-python's server (0.3.x) ignores stream_options.include_usage: its streams carry
    # no usage, so the proxy bills a streamed local request from a safe estimate (the prompt's
    # token bound, one token per event: tests/integration/test_stream_usage_estimate.py).
    usage = [c.usage for c in chunks if c.usage is not None]
    assert all(0 < u.completion_tokens <= 8 for u in usage)


def test_status_reports_healthy(local_server: dict[str, Any]) -> None:
    result = _local("status", "--json", state_dir=local_server["state_dir"], timeout=60)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["healthy"] is True and status["models"] == [SERVED]
    assert status["server"]["engine"] == "llamacpp"
    assert status["server"]["url"] == local_server["url"]
    assert status["server"]["model"].endswith("gemma-3-270m-q4_k_m.gguf")
    table = _local("status", state_dir=local_server["state_dir"], timeout=60)
    assert table.returncode == 0 and "healthy" in table.stdout


def test_down_stops_it(local_server: dict[str, Any]) -> None:
    """Runs last in this module: stops the server, then the fixture's own `down` is a no-op."""
    state = json.loads((local_server["state_dir"] / "server.json").read_text())
    down = _local("down", state_dir=local_server["state_dir"], timeout=60)
    assert down.returncode == 0 and f"pid {state['pid']}" in down.stdout
    assert not (local_server["state_dir"] / "server.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{local_server['url']}/v1/models", timeout=2)
    status = _local("status", state_dir=local_server["state_dir"], timeout=60)
    assert status.returncode == 1


def test_a_broken_model_file_fails_with_the_log_tail(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    result = _local("up", "--model", str(bad), "--port", str(free_port()), state_dir=tmp_path)
    assert result.returncode == 2
    assert "exited during start-up" in result.stderr and "last lines of the log" in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr.split("last lines")[0]
    assert not (tmp_path / "server.json").exists()


def test_a_start_that_times_out_leaves_nothing_running(tmp_path: Path) -> None:
    from router.local import DEFAULT_CHAT_FORMAT, EngineSpec, LocalServer, StartFailed, default_gguf

    server = LocalServer(tmp_path)
    spec = EngineSpec(
        "llamacpp", str(default_gguf()), SERVED, port=free_port(), chat_format=DEFAULT_CHAT_FORMAT
    )
    with pytest.raises(StartFailed, match="did not answer"):
        server.start(spec, timeout_s=0.3)
    assert server.read() is None
    marker = f"\0--port\0{spec.port}\0".encode()
    leftovers = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes():
                leftovers.append(cmdline.parent.name)
        except OSError:
            continue
    assert leftovers == []
