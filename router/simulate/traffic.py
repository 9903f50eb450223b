"""The traffic `tierwise simulate` replays, from either of two files:

- **a request log export** (`tierwise export requests`): one JSON record per line as the proxy
  logged it (`time`, `caller`, `team`, `tier`, `reason`, `prompt_tokens`, `completion_tokens`,
  `difficulty`, and `prompt` when the policy kept prompts). Requests are replayed at their own
  times with their own token counts; a kept prompt is scored again by the simulated policy's
  scorer, otherwise the logged difficulty is used. Requests that were pinned to a tier stay
  pinned to it where the simulated policy has that tier.
- **a labelled routing file** (the `shared/data/routing` format: `id`, `prompt` or `messages`,
  `scores` by model): no times or token counts, so the rows are shuffled (seeded) and spread
  evenly over `span_s` from `start`, with prompt tokens estimated from the text (4 characters a
  token) and `output_tokens` each; their scores give the quality of each routing.

`read_traffic` tells the two apart by their fields and raises `DataError` (file:line) for
anything else.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifiers.data import DataError
from classifiers.text import scoring_text

__all__ = ["Request", "Traffic", "read_traffic"]


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    time: float
    text: str | None  # None: not kept; `difficulty` is the one logged
    difficulty: float | None
    model: str  # `auto` or the tier it was pinned to
    caller: str | None
    team: str | None
    prompt_tokens: int
    completion_tokens: int
    scores: Mapping[str, float] | None = None  # labelled rows: quality per model


@dataclass(frozen=True, slots=True)
class Traffic:
    kind: str  # "request_log" | "labelled"
    requests: list[Request]
    models: list[str]  # labelled rows: every model scored (for --weak / --strong)


def _lines(path: Path) -> Iterator[tuple[str, Any]]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield f"{path}:{n}", json.loads(line)
                    except ValueError as exc:
                        raise DataError(f"{path}:{n}", f"not JSON ({exc})") from None
    except OSError as exc:
        raise DataError(str(path), f"cannot read: {exc}") from None


def _int(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(where, f"field {key!r} must be a non-negative integer")
    return value


def _logged(obj: Mapping[str, Any], where: str) -> Request:
    t = obj.get("time")
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise DataError(where, "field 'time' must be a number (epoch seconds)")
    difficulty = obj.get("difficulty")
    if isinstance(difficulty, bool) or not isinstance(difficulty, int | float):
        raise DataError(where, "field 'difficulty' must be a number")
    prompt = obj.get("prompt")
    pinned = obj.get("reason") == "pinned" and isinstance(obj.get("tier"), str)
    return Request(
        id=str(obj.get("request_id")),
        time=float(t),
        text=prompt if isinstance(prompt, str) else None,
        difficulty=float(difficulty),
        model=str(obj["tier"]) if pinned else "auto",
        caller=obj.get("caller") if isinstance(obj.get("caller"), str) else None,
        team=obj.get("team") if isinstance(obj.get("team"), str) else None,
        prompt_tokens=_int(obj, "prompt_tokens", where),
        completion_tokens=_int(obj, "completion_tokens", where),
    )


def _labelled(obj: Mapping[str, Any], where: str, output_tokens: int) -> Request:
    scores = obj.get("scores")
    if not isinstance(scores, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in scores.values()
    ):
        raise DataError(where, "field 'scores' must map model names to numbers")
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(messages, list):
        text = scoring_text([m for m in messages if isinstance(m, dict)])
    else:
        raise DataError(where, "a labelled row needs 'prompt' (a string) or 'messages'")
    return Request(
        id=str(obj.get("id")),
        time=0.0,
        text=text,
        difficulty=None,
        model="auto",
        caller=None,
        team=None,
        prompt_tokens=max(1, len(text) // 4),
        completion_tokens=output_tokens,
        scores={str(k): float(v) for k, v in scores.items()},
    )


def read_traffic(
    path: Path | str,
    start: float,
    span_s: float = 86_400.0,
    output_tokens: int = 300,
    seed: int = 0,
) -> Traffic:
    """The requests of `path` in time order (see the module docstring)."""
    path = Path(path)
    requests: list[Request] = []
    kind = ""
    for where, obj in _lines(path):
        if not isinstance(obj, dict):
            raise DataError(where, "expected a JSON object")
        this = "request_log" if "request_id" in obj else "labelled" if "scores" in obj else ""
        if not this:
            raise DataError(
                where,
                "neither a request log record (request_id, time, ...) nor a labelled row "
                "(id, prompt, scores)",
            )
        if kind and this != kind:
            raise DataError(where, f"a {this} row in a file of {kind} rows")
        kind = this
        if kind == "request_log":
            requests.append(_logged(obj, where))
        else:
            requests.append(_labelled(obj, where, output_tokens))
    if not requests:
        raise DataError(str(path), "no requests")
    models: list[str] = []
    if kind == "labelled":
        random.Random(seed).shuffle(requests)
        step = span_s / len(requests)
        requests = [_at(r, start + i * step) for i, r in enumerate(requests)]
        models = sorted({m for r in requests for m in (r.scores or {})})
    else:
        requests.sort(key=lambda r: r.time)
    return Traffic(kind, requests, models)


def _at(request: Request, t: float) -> Request:
    from dataclasses import replace

    return replace(request, time=t)
