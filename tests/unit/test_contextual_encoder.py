"""The contextual encoder (classifiers.contextual): errors always; the model when it is there.

The model tests need the ``accurate`` extra (onnxruntime, tokenizers) and the model built by
``scripts/build-accurate``; without either they are skipped, the error tests still run.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifiers import contextual
from classifiers.contextual import (
    ContextualEmbedder,
    EncoderUnavailable,
    MissingDependency,
    MissingModelFiles,
    default_directory,
)

TEXTS = [
    "How do I reverse a list in Python?",
    "What is the capital of France?",
    "hi",
    "",
    "Prove that there are infinitely many primes. " * 80,  # past 256 tokens: truncated
    "Écris une fonction qui trie une liste — avec des accents, 中文 and emoji 🙂.",
]


def test_default_directory_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIERWISE_ACCURATE_DIR", str(tmp_path / "here"))
    assert default_directory() == tmp_path / "here"
    monkeypatch.delenv("TIERWISE_ACCURATE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_directory() == tmp_path / "cache" / "tierwise" / "accurate"


def test_missing_model_files_names_the_build_step_and_the_extra(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(MissingModelFiles) as caught:
        ContextualEmbedder.load(tmp_path)
    error = caught.value
    assert isinstance(error, EncoderUnavailable)
    assert isinstance(error, RuntimeError)
    assert error.directory == tmp_path
    assert error.missing == ["model.onnx", "manifest.json"]
    assert "scripts/build-accurate" in str(error)
    assert "tierwise[accurate]" in str(error)
    assert "TIERWISE_ACCURATE_DIR" in str(error)


@pytest.mark.parametrize("module", ["onnxruntime", "tokenizers"])
def test_missing_dependency_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str
) -> None:
    if module == "tokenizers":
        pytest.importorskip("onnxruntime")  # else onnxruntime is the one reported missing
    real_import = builtins.__import__

    def without(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == module or name.startswith(module + "."):
            raise ImportError(f"No module named {module!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    with pytest.raises(MissingDependency) as caught:
        ContextualEmbedder.load(tmp_path)
    assert caught.value.module == module
    assert "pip install 'tierwise[accurate]'" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)


@pytest.fixture(scope="module")
def embedder() -> Iterator[ContextualEmbedder]:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    try:
        model = ContextualEmbedder.load()
    except MissingModelFiles as exc:
        pytest.skip(f"contextual model not built: {exc}")
    yield model


def test_embed_shape_dtype_and_unit_norm(embedder: ContextualEmbedder) -> None:
    assert embedder.dim == 384
    assert embedder.name == "all-MiniLM-L6-v2"
    for text in TEXTS:
        vector = embedder.embed(text)
        assert vector.shape == (384,)
        assert vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_embed_is_deterministic(embedder: ContextualEmbedder) -> None:
    first = [embedder.embed(t) for t in TEXTS]
    again = [embedder.embed(t) for t in TEXTS]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_embed_many_equals_embed_per_row(embedder: ContextualEmbedder) -> None:
    singles = np.stack([embedder.embed(t) for t in TEXTS])
    for batch_size in (1, 4, 32):
        many = embedder.embed_many(TEXTS, batch_size=batch_size)
        assert many.shape == (len(TEXTS), 384)
        assert many.dtype == np.float32
        np.testing.assert_allclose(many, singles, atol=2e-5)
    assert embedder.embed_many([]).shape == (0, 384)
    with pytest.raises(ValueError, match="batch_size"):
        embedder.embed_many(TEXTS, batch_size=0)


def test_long_text_is_truncated_at_max_seq_length(embedder: ContextualEmbedder) -> None:
    long = "Prove that there are infinitely many primes. " * 80
    longer = long + " And then write it all down in Lean, with every lemma named. " * 40
    np.testing.assert_array_equal(embedder.embed(long), embedder.embed(longer))


def test_paraphrases_are_closer_than_unrelated_text(embedder: ContextualEmbedder) -> None:
    a, b, c = embedder.embed_many(
        [
            "How do I reverse a list in Python?",
            "What is the way to invert the order of a Python list?",
            "Write a sonnet about autumn leaves falling in Kyoto.",
        ]
    )
    assert float(a @ b) > 0.7
    assert float(a @ b) > float(a @ c) + 0.3


def test_matches_the_build_manifest(embedder: ContextualEmbedder) -> None:
    manifest = json.loads((default_directory() / "manifest.json").read_text())
    assert manifest["dim"] == embedder.dim
    assert manifest["max_seq_length"] == embedder.max_seq_length == contextual.MAX_SEQ_LENGTH
