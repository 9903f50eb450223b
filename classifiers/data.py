"""Reading the routing data: `*.jsonl.gz` (or plain `*.jsonl`) rows of prompts and model scores.

Each line is one JSON object ``{"id", "source", "task", "prompt", "scores": {model: float}}``
(see the data folder's README). Bad input raises :class:`DataError` carrying the file and line,
so command-line tools can report it without a stack trace.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifiers.text import scoring_text

__all__ = [
    "DATA_ENV",
    "DataError",
    "Row",
    "UnknownModelError",
    "default_data_dir",
    "file_sha256",
    "pair_scores",
    "read_rows",
    "row_text",
]

DATA_ENV = "TIERWISE_DATA_DIR"


class DataError(ValueError):
    """Bad or missing data; `where` is ``file`` or ``file:line``."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class UnknownModelError(DataError):
    """A model name that no row of the data scores; `known` lists the ones that are."""

    def __init__(self, where: str, model: str, known: Sequence[str]) -> None:
        super().__init__(where, f"unknown model {model!r}; known models: {', '.join(known)}")
        self.model = model
        self.known = list(known)


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled prompt."""

    id: str
    source: str
    task: str
    prompt: str
    scores: Mapping[str, float]

    @property
    def family(self) -> str:
        """The data set family, from the id prefix (``dcrouter``, ``alpaca_eval``, ...)."""
        return self.id.split("-", 1)[0]


def default_data_dir(repo_root: Path | None = None) -> Path:
    """`$TIERWISE_DATA_DIR`, else ``../shared/data/routing`` beside the repository."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    root = repo_root or Path(__file__).resolve().parent.parent
    return (root.parent / "shared" / "data" / "routing").resolve()


def row_text(row: Row) -> str:
    """The scored text of a row: the same view of a request the proxy scores."""
    return scoring_text([{"role": "user", "content": row.prompt}])


def _open_lines(path: Path) -> Iterator[str]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            yield from handle
    except FileNotFoundError:
        raise DataError(str(path), "no such file") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"cannot read: {exc}") from None


def _parse(obj: Any, where: str) -> Row:
    if not isinstance(obj, dict):
        raise DataError(where, "expected a JSON object")
    for key in ("id", "prompt"):
        if not isinstance(obj.get(key), str):
            raise DataError(where, f"field {key!r} must be a string")
    scores = obj.get("scores")
    if not isinstance(scores, dict) or not scores:
        raise DataError(where, "field 'scores' must be a non-empty object")
    clean: dict[str, float] = {}
    for model, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(where, f"score of {model!r} must be a number")
        if not 0.0 <= float(value) <= 1.0:
            raise DataError(where, f"score of {model!r} must be in [0, 1]")
        clean[str(model)] = float(value)
    return Row(
        id=obj["id"],
        source=str(obj.get("source", "")),
        task=str(obj.get("task", "")),
        prompt=obj["prompt"],
        scores=clean,
    )


def read_rows(path: Path | str) -> list[Row]:
    """All rows of one data file; raises :class:`DataError` with ``file:line`` on bad input."""
    path = Path(path)
    if path.is_dir():
        raise DataError(str(path), "is a directory, expected a .jsonl or .jsonl.gz file")
    rows: list[Row] = []
    for number, line in enumerate(_open_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(where, f"malformed JSON ({exc.msg})") from None
        rows.append(_parse(obj, where))
    if not rows:
        raise DataError(str(path), "no rows")
    return rows


def pair_scores(
    rows: Sequence[Row], weak: str, strong: str, where: str = "data"
) -> tuple[list[int], list[float], list[float]]:
    """Indices of the rows scoring both models, with the weak and strong scores.

    Raises :class:`UnknownModelError` listing the known models when either is never scored.
    """
    known = sorted({m for row in rows for m in row.scores})
    for model in (weak, strong):
        if model not in known:
            raise UnknownModelError(where, model, known)
    index: list[int] = []
    w: list[float] = []
    s: list[float] = []
    for i, row in enumerate(rows):
        if weak in row.scores and strong in row.scores:
            index.append(i)
            w.append(row.scores[weak])
            s.append(row.scores[strong])
    if not index:
        raise DataError(where, f"no row scores both {weak!r} and {strong!r}")
    return index, w, s


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
