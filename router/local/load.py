"""How busy a local model server is: `load_of(engine, payload) -> Load(running, waiting)` (pure).

The payload is what the server publishes, as text or already-parsed JSON:

- vLLM: Prometheus text from `/metrics` (`vllm:num_requests_running`, `vllm:num_requests_waiting`);
- SGLang: Prometheus text from `/metrics` (`sglang:num_running_reqs`, `sglang:num_queue_reqs`);
- llama.cpp's `llama-server`: `/metrics` (`llamacpp:requests_processing`,
  `llamacpp:requests_deferred`), `/slots` (a JSON list of slots, `is_processing` or `state`), or
  `/health` (`slots_processing`; it does not count queued requests, so `waiting` is 0).

Values summed over every label set (several models or data-parallel engines on one server).
`llama-cpp-python`'s server publishes none of these (it serves one request at a time); for it the
proxy's own in-flight count is the load signal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from router.local.engines import ENGINES, Engine

__all__ = ["Load", "load_of", "prometheus_values"]


class Load(NamedTuple):
    running: int
    waiting: int


_PROMETHEUS: dict[str, tuple[str, str]] = {
    "vllm": ("vllm:num_requests_running", "vllm:num_requests_waiting"),
    "sglang": ("sglang:num_running_reqs", "sglang:num_queue_reqs"),
    "llamacpp": ("llamacpp:requests_processing", "llamacpp:requests_deferred"),
}


def prometheus_values(text: str) -> dict[str, float]:
    """Sum the finite samples of each metric name in Prometheus text exposition format."""
    values: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, _, rest = line.partition("{")
            _, _, rest = rest.rpartition("}")
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        if not math.isfinite(value):  # NaN before the first request, on some versions
            continue
        values[name.strip()] = values.get(name.strip(), 0.0) + value
    return values


def load_of(engine: Engine | str, payload: str | bytes | Mapping[str, Any] | Sequence[Any]) -> Load:
    """Running and waiting requests, from the server's metrics or JSON status.

    Raises `ValueError` when the payload carries no load information for that engine.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}")
    data: Any = payload
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    if isinstance(data, str):
        stripped = data.lstrip()
        if stripped.startswith(("{", "[")):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        else:
            return _from_prometheus(engine, data)
    if engine == "llamacpp":
        return _from_llamacpp_json(data)
    raise ValueError(f"{engine} publishes its load as Prometheus text (/metrics), not JSON")


def _from_prometheus(engine: str, text: str) -> Load:
    running_name, waiting_name = _PROMETHEUS[engine]
    values = prometheus_values(text)
    if running_name not in values and waiting_name not in values:
        raise ValueError(f"no {running_name} or {waiting_name} in the metrics")
    return Load(round(values.get(running_name, 0.0)), round(values.get(waiting_name, 0.0)))


def _from_llamacpp_json(data: Any) -> Load:
    if isinstance(data, Sequence) and not isinstance(data, str):  # /slots
        running = 0
        for slot in data:
            if not isinstance(slot, Mapping):
                raise ValueError("a /slots entry is not an object")
            if "is_processing" in slot:
                running += bool(slot["is_processing"])
            elif "state" in slot:
                running += slot["state"] != 0
            else:
                raise ValueError("a /slots entry has neither is_processing nor state")
        return Load(running, 0)
    if isinstance(data, Mapping):  # /health
        if "slots_processing" in data:
            return Load(int(data["slots_processing"]), int(data.get("slots_deferred", 0)))
        raise ValueError("the health answer carries no slot counts (llama-server --slots off?)")
    raise ValueError("expected a JSON object (/health) or list (/slots)")
