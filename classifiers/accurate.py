"""The accurate scorer (`routing.scorer: accurate`): cues + the contextual embedding, ridge heads.

Features of a prompt: ``log1p(len(prompt))``, the 11 dense cues of
:func:`classifiers.features.analyse`, and the contextual all-MiniLM-L6-v2 embedding
(:mod:`classifiers.contextual`) of its question stem (:mod:`classifiers.stem`) or of the whole
text (``text``). The head is a ridge regression on the standardised row (``kind: "ridge"``) or the
sum of two standardised ridge outputs, one on the whole row and one on the cues alone
(``kind: "ensemble"``). It is trained on **per-task percentile ranks** of the routing target
(:func:`per_task_targets`), so it learns within-task difficulty rather than which benchmark a
prompt comes from; the raw output is calibrated to [0, 1] by its rank among the outputs of the
training prompts. ``python -m classifiers.train_accurate`` trains and selects it
(train files only) and writes ``accurate.json``.

The encoder is ~90 MB and built per machine (``scripts/build-accurate``); the head is a small
JSON shipped in ``classifiers/artifacts/accurate/``. A call takes a few to ~30 ms, so the scorer
declares ``blocking = True`` and the proxy runs it off its event loop.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from classifiers.features import analyse
from classifiers.lean import calibrate
from classifiers.stem import stem
from classifiers.target import Example

__all__ = [
    "ACCURATE_NAME",
    "CUES",
    "FORMAT",
    "AccurateScorer",
    "Head",
    "Ridge",
    "cue_row",
    "fit_head",
    "load_accurate",
    "per_task_targets",
    "scored_text",
]

Array = npt.NDArray[np.float64]
FORMAT = "accurate-1"
ACCURATE_NAME = "accurate.json"
CUES = 12  # log1p(len) + 11 dense cues
# the encoder reads at most 256 tokens (a few characters each): cutting the text first spares the
# tokenizer a 200k-character prompt without changing what the model sees
ENCODER_CHARS = 4000
TEXTS = ("stem", "full")
KINDS = ("ridge", "ensemble")


class _Encoder(Protocol):
    name: str

    def embed(self, text: str) -> npt.NDArray[np.float32]: ...


def cue_row(text: str) -> Array:
    """``[log1p(len(text)), the 11 dense cues of analyse(text)]``."""
    _, dense = analyse(text)
    return np.array([math.log1p(len(text)), *dense], dtype=np.float64)


def scored_text(text: str, which: str) -> str:
    """What the encoder reads: the question stem (``"stem"``) or the whole text (``"full"``)."""
    return (stem(text) if which == "stem" else text)[:ENCODER_CHARS]


def _pct(values: Sequence[float]) -> Array:
    arr = np.asarray(values, dtype=np.float64)
    order = np.argsort(np.argsort(arr, kind="stable"), kind="stable")
    out: Array = (order + 0.5) / len(arr)
    return out


def per_task_targets(examples: Sequence[Example], failure_share: float) -> Array:
    """Each example's target as its percentile rank within its (family, task): the rank of the
    gain, mixed with the rank of the failure rate by `failure_share`."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[(ex.family, ex.task)].append(i)
    y = np.zeros(len(examples))
    for idx in groups.values():
        gain = _pct([examples[i].target for i in idx])
        fail = _pct([examples[i].failure for i in idx])
        y[idx] = (1.0 - failure_share) * gain + failure_share * fail
    return y


@dataclass
class Ridge:
    """Closed-form ridge on the standardised columns ``[:columns]`` (``None``: all)."""

    mean: Array
    scale: Array
    weights: Array
    columns: int | None = None

    def predict(self, x: Array) -> Array:
        cols = x if self.columns is None else x[:, : self.columns]
        out: Array = ((cols - self.mean) / self.scale) @ self.weights
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "columns": self.columns,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ridge:
        cols = data.get("columns")
        return cls(
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            np.asarray(data["weights"], dtype=np.float64),
            None if cols is None else int(cols),
        )


def fit_ridge(x: Array, y: Array, alpha: float, columns: int | None = None) -> Ridge:
    cols = x if columns is None else x[:, :columns]
    mean = cols.mean(axis=0)
    scale = cols.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (cols - mean) / scale
    weights = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return Ridge(mean, scale, weights, columns)


@dataclass
class Head:
    """One ridge, or the sum of standardised outputs of several (``sd``: each one's training
    output standard deviation)."""

    parts: list[Ridge]
    sd: list[float]

    def predict(self, x: Array) -> Array:
        if len(self.parts) == 1:
            return self.parts[0].predict(x)
        out: Array = sum(
            (p.predict(x) / s for p, s in zip(self.parts, self.sd, strict=True)),
            np.zeros(len(x)),
        )
        return out


def fit_head(x: Array, y: Array, alpha: float, kind: str) -> Head:
    """`kind` ``"ridge"`` (whole row) or ``"ensemble"`` (whole row + cues alone)."""
    if kind not in KINDS:
        raise ValueError(f"unknown head kind {kind!r} (use one of: {', '.join(KINDS)})")
    parts = [fit_ridge(x, y, alpha)]
    if kind == "ensemble":
        parts.append(fit_ridge(x, y, alpha, CUES))
    sd = [float(p.predict(x).std()) or 1.0 for p in parts]
    return Head(parts, sd)


@dataclass
class AccurateScorer:
    """The accurate scorer: ``difficulty = rank(head([cues, encoder(text)]))``."""

    encoder: _Encoder
    head: Head
    quantiles: list[float]
    text: str = "stem"
    name: str = "accurate"
    blocking = True

    def row(self, text: str) -> Array:
        vec = np.asarray(self.encoder.embed(scored_text(text, self.text)), dtype=np.float64)
        return np.concatenate([cue_row(text), vec])

    def raw(self, text: str) -> float:
        return float(self.head.predict(self.row(text)[None, :])[0])

    def difficulty(self, text: str) -> float:
        return float(calibrate(self.raw(text), self.quantiles))


def save_accurate(
    directory: Path, head: Head, quantiles: Sequence[float], meta: dict[str, Any]
) -> Path:
    """Write ``accurate.json`` (sorted keys, so the same fit gives the same bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {
        "format": FORMAT,
        "head": {"parts": [p.to_json() for p in head.parts], "sd": head.sd},
        "quantiles": list(quantiles),
        **meta,
    }
    path = directory / ACCURATE_NAME
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_accurate(
    directory: Path | str, encoder_loader: Callable[[], _Encoder] | None = None
) -> AccurateScorer:
    """The scorer in `directory` (``accurate.json``) on the contextual encoder.

    Raises :class:`~classifiers.artifact.ArtifactError` when the file is unreadable, was
    trained on another encoder, or the encoder cannot be loaded (the message carries the
    encoder's install hint).
    """
    from classifiers.artifact import ArtifactError

    path = Path(directory) / ACCURATE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ArtifactError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}")
        head = Head(
            [Ridge.from_json(p) for p in data["head"]["parts"]],
            [float(s) for s in data["head"]["sd"]],
        )
        quantiles = [float(q) for q in data["quantiles"]]
        text = str(data.get("text", "stem"))
        want = str(data["encoder"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path}: cannot read the accurate scorer: {exc}") from None
    if encoder_loader is None:
        from classifiers.contextual import ContextualEmbedder, EncoderUnavailable

        try:
            encoder: _Encoder = ContextualEmbedder.load()
        except EncoderUnavailable as exc:
            raise ArtifactError(f"{path}: the contextual encoder is unavailable: {exc}") from None
    else:
        encoder = encoder_loader()
    if encoder.name != want:
        raise ArtifactError(
            f"{path}: trained on encoder {want!r}, the loaded one is {encoder.name!r}"
        )
    return AccurateScorer(encoder, head, quantiles, text, name=str(data.get("name", "accurate")))
