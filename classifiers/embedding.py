"""A static word-embedding model served with numpy only (pure).

The shipped artifact (``classifiers/artifacts/embedding/``) is a model2vec-style distillation of
``sentence-transformers/all-MiniLM-L6-v2``: one vector per WordPiece token, PCA-reduced and SIF
weighted. A text's embedding is the mean of its tokens' vectors (model2vec's pooling, ``[UNK]``
left out), L2-normalised; text with no known token embeds to the zero vector. It matches
``model2vec.StaticModel.encode(..., max_length=None)`` (``scripts/build_embedding.py`` checks that
on real prompts), except that nothing is truncated: callers pass the text they want embedded
(the classifier passes at most ~2,000 characters), or `max_chars`.

Rebuild the artifact with ``scripts/build-embedding``; serving never needs torch or model2vec.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifiers.wordpiece import WordPieceTokenizer

__all__ = ["DEFAULT_DIRECTORY", "StaticEmbedder"]

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "artifacts" / "embedding"
MANIFEST = "manifest.json"
MATRIX = "embeddings.npy"
VOCABULARY = "vocab.txt"

Vector = npt.NDArray[np.float32]


class StaticEmbedder:
    """Text -> unit vector of `dim` floats: mean of static token vectors, L2-normalised.

    `vocabulary[i]` is the token of row `i` of `matrix`; `cache_size` bounds the tokenizer's
    word cache. Load the shipped model with :meth:`load`.
    """

    def __init__(
        self,
        vocabulary: Sequence[str],
        matrix: npt.ArrayLike,
        *,
        name: str = "static",
        cache_size: int = 50_000,
    ) -> None:
        rows = np.asarray(matrix, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] != len(vocabulary):
            raise ValueError(
                f"matrix of shape {rows.shape} does not fit a vocabulary of {len(vocabulary)}"
            )
        index = {token: i for i, token in enumerate(vocabulary)}
        if len(index) != len(vocabulary):
            raise ValueError("the vocabulary has duplicate tokens")
        self.name = name
        self.dim = int(rows.shape[1])
        self._matrix = rows
        self._zero = np.zeros(self.dim, dtype=np.float32)
        self.tokenizer = WordPieceTokenizer(index, cache_size=cache_size)

    @classmethod
    def load(cls, directory: Path | str = DEFAULT_DIRECTORY) -> StaticEmbedder:
        """The model in `directory` (default: the shipped artifact)."""
        root = Path(directory)
        manifest: dict[str, Any] = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        vocabulary = (root / VOCABULARY).read_text(encoding="utf-8").split("\n")
        if vocabulary and vocabulary[-1] == "":
            vocabulary.pop()
        matrix = np.load(root / MATRIX, allow_pickle=False)
        embedder = cls(vocabulary, matrix, name=str(manifest["name"]))
        if embedder.dim != int(manifest["dim"]):
            raise ValueError(
                f"{root / MATRIX} has {embedder.dim} dims, the manifest says {manifest['dim']}"
            )
        return embedder

    def token_ids(self, text: str) -> list[int]:
        """The ids pooled for `text` (``[UNK]`` left out)."""
        return self.tokenizer.ids(text)

    def embed(self, text: str, *, max_chars: int | None = None) -> Vector:
        """`text` (its first `max_chars` characters, if given) as a float32 vector of `dim`."""
        if max_chars is not None:
            text = text[:max_chars]
        ids = np.frombuffer(self.tokenizer.packed_ids(text), dtype=np.intc)
        if not len(ids):
            return self._zero.copy()
        rows = self._matrix.take(ids, axis=0)
        total: Vector = np.ones(len(ids), dtype=np.float32) @ rows  # the sum; BLAS beats .sum(0)
        norm = float(np.sqrt(np.dot(total, total)))
        if norm == 0.0:
            return self._zero.copy()
        total /= norm
        return total

    def embed_many(self, texts: Iterable[str], *, max_chars: int | None = None) -> Vector:
        """Each text's :meth:`embed`, as rows of an ``(n, dim)`` float32 array."""
        rows = [self.embed(text, max_chars=max_chars) for text in texts]
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(rows)

    def __repr__(self) -> str:
        return f"StaticEmbedder(name={self.name!r}, dim={self.dim})"
