"""OpenTelemetry traces (`TIERWISE_OTEL_EXPORTER=console`): a real proxy process prints its
spans as JSON; each request is one trace with auth, score, decide, budget, upstream and settle
spans under `tierwise.request`, the client's `traceparent` is continued, and the upstream
receives a `traceparent` naming the upstream span."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from router.testing.processes import ServerProcess, free_port, proxy_command
from tests.conftest import write_policy

pytest.importorskip("opentelemetry.sdk", reason="the otel extra (pip install 'tierwise[otel]')")

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


def _spans(text: str) -> list[dict[str, Any]]:
    """The JSON objects the console exporter printed, among the other lines."""
    decoder = json.JSONDecoder()
    spans, i = [], 0
    while (start := text.find('{\n    "name"', i)) != -1:
        obj, end = decoder.raw_decode(text, start)
        spans.append(obj)
        i = end
    return spans


def test_each_request_is_one_trace_continued_to_the_upstream(
    tmp_path: Path,
) -> None:
    upstream_port = free_port()
    from router.testing.processes import upstream_command

    with ServerProcess(upstream_command(upstream_port), upstream_port, "/_stats") as upstream:
        policy = write_policy(tmp_path / "p.yaml", upstream.url)
        port = free_port()
        log = tmp_path / "proxy.log"
        env = {"TIERWISE_LEDGER_URL": "memory://", "TIERWISE_OTEL_EXPORTER": "console"}
        with ServerProcess(proxy_command(policy, port), port, env=env, log=log) as server:
            client = OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0)
            try:
                client.chat.completions.create(
                    model="cheap",
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"traceparent": CLIENT_PARENT},
                )
                for _ in client.chat.completions.create(
                    model="frontier", stream=True, messages=[{"role": "user", "content": "s"}]
                ):
                    pass
            finally:
                client.close()
            deadline = time.monotonic() + 10
            while log.read_text().count('"name": "settle"') < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        received = httpx.get(f"{upstream.url}/_stats").json()["traceparents"]
    spans = _spans(log.read_text())
    traces: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        traces.setdefault(s["context"]["trace_id"].removeprefix("0x"), []).append(s)
    assert len(traces) == 2, {t: [s["name"] for s in v] for t, v in traces.items()}
    first = traces[CLIENT_TRACE]  # the client's trace, continued
    names = {s["name"] for s in first}
    assert {"tierwise.request", "auth", "score", "decide", "budget", "upstream", "settle"} <= names
    [root] = [s for s in first if s["name"] == "tierwise.request"]
    assert root["parent_id"] == "0x00f067aa0ba902b7"
    assert root["attributes"]["tierwise.tier"] == "cheap"
    root_id = root["context"]["span_id"]
    for name in ("auth", "score", "decide", "budget", "upstream"):
        [child] = [s for s in first if s["name"] == name]
        assert child["parent_id"] == root_id, name
    [call] = [s for s in first if s["name"] == "upstream"]
    assert received[0] == f"00-{CLIENT_TRACE}-{call['context']['span_id'].removeprefix('0x')}-01"
    [other] = [v for t, v in traces.items() if t != CLIENT_TRACE]
    [streamed] = [s for s in other if s["name"] == "upstream"]
    assert streamed["attributes"]["tierwise.ttft_s"] > 0
    assert received[1].split("-")[1] == streamed["context"]["trace_id"].removeprefix("0x")
