"""Reading the routing data: `*.jsonl.gz` (or plain `*.jsonl`) rows of prompts and model scores.

Each line is one JSON object ``{"id", "source", "task", "prompt", "scores": {model: float}}``
(see the data folder's README); :func:`read_rows` reads them. Prompts to score need no labels:
:func:`read_prompts` takes ``{"id", "prompt"}`` or ``{"id", "messages": [...]}`` rows (any
``scores`` ignored). Bad input raises :class:`DataError` carrying the file and line, so
command-line tools can report it without a stack trace.
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
    "Prompt",
    "Row",
    "UnknownModelError",
    "default_data_dir",
    "file_sha256",
    "pair_scores",
    "read_prompts",
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


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt to score, unlabelled: its id (as written: a string or an integer) and the
    text the proxy would score for it."""

    id: str | int
    text: str


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


def _objects(path: Path) -> Iterator[tuple[str, Any]]:
    """(``file:line``, decoded JSON) for each non-blank line of a data file."""
    if path.is_dir():
        raise DataError(str(path), "is a directory, expected a .jsonl or .jsonl.gz file")
    for number, line in enumerate(_open_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(where, f"malformed JSON ({exc.msg})") from None
        yield where, obj


def read_rows(path: Path | str) -> list[Row]:
    """All rows of one data file; raises :class:`DataError` with ``file:line`` on bad input."""
    path = Path(path)
    rows = [_parse(obj, where) for where, obj in _objects(path)]
    if not rows:
        raise DataError(str(path), "no rows")
    return rows


def _prompt(obj: Any, where: str) -> Prompt:
    if not isinstance(obj, dict):
        raise DataError(where, "expected a JSON object")
    rid = obj.get("id")
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        raise DataError(where, "field 'id' must be a string or an integer")
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if isinstance(prompt, str):
        return Prompt(rid, scoring_text([{"role": "user", "content": prompt}]))
    if prompt is None and isinstance(messages, list) and messages:
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise DataError(where, f"messages[{i}] must be an object with a 'role' string")
        return Prompt(rid, scoring_text(messages))
    raise DataError(
        where,
        "needs 'prompt' (a string) or 'messages' (a non-empty list of chat messages)",
    )


def read_prompts(path: Path | str) -> list[Prompt]:
    """The prompts of one file to score: rows with ``id`` and ``prompt`` (or ``messages``,
    an OpenAI-style chat whose scored text is the proxy's, see `scoring_text`); labels are
    not needed (nor checked). :class:`DataError` with ``file:line`` on bad input."""
    path = Path(path)
    prompts = [_prompt(obj, where) for where, obj in _objects(path)]
    if not prompts:
        raise DataError(str(path), "no rows")
    return prompts


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
