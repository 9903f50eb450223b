"""BERT uncased WordPiece tokenisation in plain Python (pure; no `tokenizers` import).

Reproduces what the Hugging Face ``tokenizers`` pipeline of ``all-MiniLM-L6-v2`` does (the one
model2vec's ``StaticModel`` runs), step for step:

1. added tokens: the literal, case-sensitive strings ``[PAD]`` / ``[UNK]`` in the raw text are
   tokens of their own (matched before normalisation);
2. ``BertNormalizer``: drop NUL, U+FFFD and control/format characters (Unicode category C*, except
   tab, newline and carriage return, which are whitespace), turn whitespace into spaces, put spaces
   around CJK ideographs, strip accents (NFD, drop non-spacing marks), lower-case character by
   character (so no final-sigma rule);
3. ``BertPreTokenizer``: split on whitespace, then isolate every punctuation character (ASCII
   punctuation, which includes ``$+<=>^`|~``, or Unicode category P*);
4. ``WordPiece``: greedy longest-match-first with ``##`` continuation pieces; a word longer than
   100 characters, or one with an unmatched position, is a single ``[UNK]``.

Whitespace-separated chunks of the raw text are tokenised once and cached (a bounded dict, oldest
entry evicted first), so a prompt mostly costs one dict look-up per word.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Mapping

__all__ = ["WordPieceTokenizer"]

_UNK = "[UNK]"
_PAD = "[PAD]"
_PREFIX = "##"
_MAX_WORD_CHARS = 100

# Characters Python's str.split() treats as whitespace but the Rust normaliser removes as
# control characters (category Cc other than tab/newline/CR): dropped before splitting.
_SPLIT_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ASCII_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
# The added tokens, matched on the raw text (case-sensitive, anywhere, no stripping).
_ADDED = re.compile(r"\[PAD\]|\[UNK\]")
# ASCII words and single ASCII punctuation characters (Rust's is_ascii_punctuation).
_ASCII_PIECES = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")


def _drop_controls(text: str) -> str:
    """`text` without the control characters that would otherwise split words (fast when none)."""
    if text.isascii():
        if len(text.encode("ascii").translate(None, _ASCII_CONTROL_BYTES)) == len(text):
            return text
    elif not _SPLIT_CONTROLS.search(text):
        return text
    return _SPLIT_CONTROLS.sub("", text)


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def _is_punctuation(char: str) -> bool:
    if char.isascii():
        return not char.isalnum() and 33 <= ord(char) <= 126
    return unicodedata.category(char).startswith("P")


def _normalise_pieces(chunk: str) -> list[str]:
    """One whitespace-free chunk of raw text -> its normalised, pre-tokenised words."""
    if chunk.isascii():  # no controls left (see _SPLIT_CONTROLS), no accents, no CJK
        return _ASCII_PIECES.findall(chunk.lower())
    cleaned: list[str] = []
    for char in chunk:
        if char == "\ufffd" or unicodedata.category(char)[0] == "C":
            continue
        if char.isspace():
            cleaned.append(" ")
        elif _is_cjk(ord(char)):
            cleaned.append(f" {char} ")
        else:
            cleaned.append(char)
    text = unicodedata.normalize("NFD", "".join(cleaned))
    text = "".join(c.lower() for c in text if unicodedata.category(c) != "Mn")
    words: list[str] = []
    for part in text.split():
        start = 0
        for i, char in enumerate(part):
            if _is_punctuation(char):
                if i > start:
                    words.append(part[start:i])
                words.append(char)
                start = i + 1
        if start < len(part):
            words.append(part[start:])
    return words


class WordPieceTokenizer:
    """BERT uncased WordPiece over a fixed vocabulary (token -> id).

    `tokenize(text)` gives the pieces (``[UNK]`` included); `ids(text)` gives the ids the
    embedder pools, with ``[UNK]`` left out as model2vec does. `cache_size` bounds the chunk
    cache (entries, not bytes); 0 disables it.
    """

    def __init__(self, vocabulary: Mapping[str, int], *, cache_size: int = 50_000) -> None:
        if _UNK not in vocabulary:
            raise ValueError("the vocabulary has no [UNK] token")
        self._vocab = dict(vocabulary)
        self._unk_id = self._vocab[_UNK]
        self._pad_id = self._vocab.get(_PAD)
        self._longest = max(len(token) for token in self._vocab)
        self._cache = _ChunkCache(self._chunk_ids, cache_size)

    @property
    def unk_id(self) -> int:
        return self._unk_id

    def word_pieces(self, word: str) -> list[str]:
        """WordPiece of one normalised, pre-tokenised word."""
        if len(word) > _MAX_WORD_CHARS:
            return [_UNK]
        vocab = self._vocab
        pieces: list[str] = []
        start, n = 0, len(word)
        while start < n:
            end = min(n, start + self._longest)
            while end > start:
                piece = word[start:end] if start == 0 else _PREFIX + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            else:
                return [_UNK]
            pieces.append(piece)
            start = end
        return pieces

    def _chunk_pieces(self, chunk: str) -> list[str]:
        return [piece for word in _normalise_pieces(chunk) for piece in self.word_pieces(word)]

    def _chunk_ids(self, chunk: str) -> bytes:
        vocab, unk = self._vocab, self._unk_id
        ids = [i for i in (vocab[p] for p in self._chunk_pieces(chunk)) if i != unk]
        return array("i", ids).tobytes()

    def _segments(self, text: str) -> Iterable[tuple[str, str | None]]:
        """(plain text, added token or None) runs of the raw text."""
        if "[PAD]" not in text and "[UNK]" not in text:
            yield text, None
            return
        start = 0
        for match in _ADDED.finditer(text):
            yield text[start : match.start()], match.group()
            start = match.end()
        yield text[start:], None

    def tokenize(self, text: str) -> list[str]:
        """The pieces of `text`, as the reference tokenizer writes them (``[UNK]`` included)."""
        pieces: list[str] = []
        for plain, added in self._segments(text):
            for chunk in _drop_controls(plain).split():
                pieces.extend(self._chunk_pieces(chunk))
            if added is not None:
                pieces.append(added)
        return pieces

    def packed_ids(self, text: str) -> bytes:
        """The ids of :meth:`ids` as native C ints, back to back (``numpy.intc`` / ``array('i')``).

        Each cached chunk is stored packed, so a prompt's ids are one ``bytes.join``: no Python
        int objects, no list, and ``numpy.frombuffer`` reads the result without a copy.
        """
        lookup = self._cache.__getitem__
        parts: list[bytes] = []
        for plain, added in self._segments(text):
            parts.append(b"".join(map(lookup, _drop_controls(plain).split())))
            if added == _PAD and self._pad_id is not None:
                parts.append(array("i", [self._pad_id]).tobytes())
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def ids(self, text: str) -> list[int]:
        """Token ids of `text` without ``[UNK]`` (what model2vec's StaticModel pools)."""
        return array("i", self.packed_ids(text)).tolist()


class _ChunkCache(dict[str, bytes]):
    """chunk -> packed ids; a miss computes and stores them, evicting the oldest entry when full.

    A hit is a plain dict look-up (no Python frame), which is what keeps a prompt cheap.
    """

    def __init__(self, compute: Callable[[str], bytes], size: int) -> None:
        super().__init__()
        self._compute = compute
        self._size = size

    def __missing__(self, chunk: str) -> bytes:
        ids = self._compute(chunk)
        if self._size > 0:
            if len(self) >= self._size:
                # another thread may have got there first
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                    del self[next(iter(self))]
            self[chunk] = ids
        return ids
