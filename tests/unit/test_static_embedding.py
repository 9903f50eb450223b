# ruff: noqa: RUF001  (look-alike characters are what these tests are about)
"""The shipped static embedding (classifiers/artifacts/embedding) and its WordPiece tokenizer.

Expected pieces below were checked against the Hugging Face tokenizer that model2vec's
StaticModel runs (scripts/build_embedding.py checks whole prompts the same way at build time).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from classifiers.embedding import DEFAULT_DIRECTORY, StaticEmbedder
from classifiers.wordpiece import WordPieceTokenizer


@pytest.fixture(scope="module")
def embedder() -> StaticEmbedder:
    return StaticEmbedder.load()


def test_loads_the_shipped_artifact(embedder: StaticEmbedder) -> None:
    manifest = json.loads((DEFAULT_DIRECTORY / "manifest.json").read_text(encoding="utf-8"))
    assert embedder.name == manifest["name"]
    assert embedder.dim == manifest["dim"] == 128
    assert manifest["vocab_size"] == 29525
    assert manifest["encoder"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["verification"]["min_cosine"] > 0.999
    assert "Apache" in (DEFAULT_DIRECTORY / "NOTICE").read_text(encoding="utf-8")


def test_manifest_sha256_matches_every_file() -> None:
    manifest = json.loads((DEFAULT_DIRECTORY / "manifest.json").read_text(encoding="utf-8"))
    on_disk = {p.name for p in DEFAULT_DIRECTORY.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    for name, entry in manifest["files"].items():
        data = (DEFAULT_DIRECTORY / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert len(data) == entry["bytes"], name


def test_shape_norm_dtype_and_determinism(embedder: StaticEmbedder) -> None:
    text = "Explain the difference between a process and a thread, with an example in C."
    first = embedder.embed(text)
    assert first.shape == (embedder.dim,)
    assert first.dtype == np.float32
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    again = StaticEmbedder.load().embed(text)
    assert np.array_equal(first, again)
    assert np.array_equal(first, embedder.embed(text))  # the cached path gives the same bytes


def test_empty_and_unknown_text_embed_to_zero(embedder: StaticEmbedder) -> None:
    for text in ["", "   \n\t ", "\x00\x01", "x" * 101, "[UNK]", "Ｆｕｌｌ"]:
        vector = embedder.embed(text)
        assert vector.shape == (embedder.dim,)
        assert not vector.any(), repr(text)
    zeros = embedder.embed("")
    zeros[0] = 1.0  # callers may write to what they get: not a shared buffer
    assert not embedder.embed("").any()


def test_embed_many_stacks_rows(embedder: StaticEmbedder) -> None:
    texts = ["first prompt", "", "a third one, longer than the others"]
    rows = embedder.embed_many(texts)
    assert rows.shape == (3, embedder.dim)
    assert rows.dtype == np.float32
    for row, text in zip(rows, texts, strict=True):
        assert np.array_equal(row, embedder.embed(text))
    assert embedder.embed_many([]).shape == (0, embedder.dim)
    assert np.array_equal(embedder.embed("abc def", max_chars=3), embedder.embed("abc"))


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("Café naïve résumé", ["cafe", "naive", "resume"]),
        (
            "Hello, World! It's 3.14.",
            ["hello", ",", "world", "!", "it", "'", "s", "3", ".", "14", "."],
        ),
        ("def f(x): return x**2", ["def", "f", "(", "x", ")", ":", "return", "x", "*", "*", "2"]),
        ('print("hi") # comment', ["print", "(", '"', "hi", '"', ")", "#", "comment"]),
        (
            "The year 2024-01-31 at 12:30",
            ["the", "year", "202", "##4", "-", "01", "-", "31", "at", "12", ":", "30"],
        ),
        (
            "unbelievably tokenization",
            ["un", "##bel", "##ie", "##va", "##bly", "token", "##ization"],
        ),
        ("$100 + 50% = <ok>", ["$", "100", "+", "50", "%", "=", "<", "ok", ">"]),
        ("ΣΊΣΥΦΟΣ", ["σ", "##ι", "##σ", "##υ", "##φ", "##ο", "##σ"]),  # no final-sigma rule
        ("日本語", ["日", "本", "語"]),
        ("İstanbul", ["istanbul"]),
        ("a\x00b c\x0bd", ["ab", "cd"]),  # control characters vanish, they do not split
        ("naïve‐approach “quoted”", ["naive", "‐", "approach", "“", "quoted", "”"]),
        ("x" * 101, ["[UNK]"]),  # longer than 100 characters
        ("Ｆｕｌｌ", ["[UNK]"]),  # full-width letters are not in the vocabulary
        ("foo[PAD]bar [UNK] [CLS]", ["foo", "[PAD]", "bar", "[UNK]", "[", "cl", "##s", "]"]),
    ],
)
def test_wordpiece_pieces(embedder: StaticEmbedder, text: str, pieces: list[str]) -> None:
    assert embedder.tokenizer.tokenize(text) == pieces


def test_word_of_exactly_100_characters_is_split_not_unknown(embedder: StaticEmbedder) -> None:
    pieces = embedder.tokenizer.tokenize("x" * 100)
    assert pieces == ["xx"] + ["##xx"] * 49


def test_ids_leave_unknown_out_and_keep_literal_pad(embedder: StaticEmbedder) -> None:
    tokenizer = embedder.tokenizer
    ids = tokenizer.ids("hello " + "y" * 150 + " [PAD] world")
    vocab = (DEFAULT_DIRECTORY / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert [vocab[i] for i in ids] == ["hello", "[PAD]", "world"]
    assert tokenizer.unk_id not in ids


def test_bounded_cache_gives_the_same_ids(embedder: StaticEmbedder) -> None:
    vocab = (DEFAULT_DIRECTORY / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    tiny = WordPieceTokenizer({t: i for i, t in enumerate(vocab)}, cache_size=2)
    uncached = WordPieceTokenizer({t: i for i, t in enumerate(vocab)}, cache_size=0)
    text = "the cat sat on the mat; the dog, however, did not sit on the mat."
    for _ in range(3):
        assert tiny.ids(text) == uncached.ids(text) == embedder.token_ids(text)
    assert len(tiny._cache) <= 2
    assert len(uncached._cache) == 0


def test_paraphrases_are_closer_than_unrelated_sentences(embedder: StaticEmbedder) -> None:
    triples = [
        (
            "How do I reset my password?",
            "What are the steps to change my account password?",
            "The capital of France is Paris.",
        ),
        (
            "Write a Python function that sorts a list of integers.",
            "Implement a sorting routine for an integer array in Python.",
            "Who won the football world cup in 1998?",
        ),
        (
            "What is the boiling point of water at sea level?",
            "At what temperature does water boil at sea level?",
            "Compose a poem about autumn leaves.",
        ),
    ]
    for anchor, paraphrase, unrelated in triples:
        a, p, u = embedder.embed_many([anchor, paraphrase, unrelated])
        assert float(a @ p) > 0.5
        assert float(a @ p) > float(a @ u) + 0.3


def test_rejects_a_matrix_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        StaticEmbedder(["[UNK]", "a"], np.zeros((3, 4)))
    with pytest.raises(ValueError, match="duplicate"):
        StaticEmbedder(["[UNK]", "a", "a"], np.zeros((3, 4)))
    with pytest.raises(ValueError, match="UNK"):
        StaticEmbedder(["a", "b"], np.zeros((2, 4)))
