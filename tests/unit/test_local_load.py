"""`load_of`: running and waiting requests from each engine's metrics or JSON status.

The fixtures follow the formats the servers publish: vLLM V1 `/metrics` with two data-parallel
engines (one gauge still NaN), SGLang `/metrics`, llama-server `/metrics`, `/slots` and `/health`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.local import Load, load_of
from router.local.load import prometheus_values

FIXTURES = Path(__file__).parent / "fixtures" / "local"


def test_vllm_metrics_sum_over_engines_and_skip_nan() -> None:
    text = (FIXTURES / "vllm_metrics.txt").read_text()
    assert load_of("vllm", text) == Load(running=5, waiting=4)
    running, waiting = load_of("vllm", text.encode())  # a plain (running, waiting) pair
    assert (running, waiting) == (5, 4)


def test_sglang_metrics() -> None:
    assert load_of("sglang", (FIXTURES / "sglang_metrics.txt").read_text()) == Load(7, 12)


def test_llamacpp_metrics_slots_and_health() -> None:
    assert load_of("llamacpp", (FIXTURES / "llamacpp_metrics.txt").read_text()) == Load(4, 46)
    slots_text = (FIXTURES / "llamacpp_slots.json").read_text()
    assert load_of("llamacpp", slots_text) == Load(2, 0)
    assert load_of("llamacpp", json.loads(slots_text)) == Load(2, 0)
    assert load_of("llamacpp", [{"id": 0, "state": 1}, {"id": 1, "state": 0}]) == Load(1, 0)
    health = {"status": "no slot available", "slots_idle": 0, "slots_processing": 4}
    assert load_of("llamacpp", health) == Load(4, 0)
    assert load_of("llamacpp", json.dumps({"status": "ok", "slots_processing": 0})) == Load(0, 0)


def test_only_one_gauge_present_counts_the_other_as_zero() -> None:
    assert load_of("vllm", 'vllm:num_requests_waiting{model_name="m"} 9\n') == Load(0, 9)


@pytest.mark.parametrize(
    ("engine", "payload", "reason"),
    [
        ("vllm", "# nothing here\nprocess_cpu_seconds_total 3.2\n", "no vllm:num_requests"),
        ("vllm", (FIXTURES / "sglang_metrics.txt").read_text(), "no vllm:num_requests"),
        ("sglang", {"status": "ok"}, "Prometheus text"),
        ("llamacpp", {"status": "ok"}, "no slot counts"),
        ("llamacpp", "{not json", "not valid JSON"),
        ("llamacpp", [{"id": 0}], "neither is_processing nor state"),
        ("tgi", "x 1", "unknown engine"),
    ],
)
def test_payloads_without_load_raise_value_error(engine: str, payload: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        load_of(engine, payload)  # type: ignore[arg-type]


def test_prometheus_values_reads_labels_with_spaces_and_timestamps() -> None:
    text = 'a{x="1 2",y="}"} 3 1700000000000\na{x="3"} 4\nb 1e3\nbroken\n'
    assert prometheus_values(text) == {"a": 7.0, "b": 1000.0}
