"""The question stem of a prompt: what is asked, without the scaffolding around it.

Exam-style prompts wrap a question in material that says nothing about how hard it is: an
instruction line ("The following are multiple choice questions (with answers) about ..."),
lettered answer choices, and an answer cue ("Answer:", "Answer with the letter ..."). The words
of that scaffolding are the same for every question of a benchmark, so features computed on it
mostly learn "which benchmark is this" and inflate the length of short questions. The classifier
takes its token and semantic features from :func:`stem` (the length prior still sees the whole
prompt).

The rules are deliberately narrow and line-based, so open-ended requests pass through unchanged:

- a trailing block of two or more choice lines (``A. ...``, ``(b) ...``, ``C) ...``, ``D: ...``),
  in order from A, is removed, and so are inline choices ``(A) x (B) y ...`` at the end of a line;
- trailing answer cues are removed: a last line that is only ``Answer:`` / ``A:`` / ``The answer
  is``, or an instruction about how to answer ("Answer with ...", "Respond with only the letter",
  "Please answer ..."), when it is the last line;
- a leading "The following are multiple choice questions ..." line is removed, and a leading
  ``Question:`` / ``Q:`` label.

When stripping would leave nothing, the prompt is returned as it was.
"""

from __future__ import annotations

import re

__all__ = ["stem"]

_CHOICE = re.compile(r"^\s*\(?([A-Ja-j])\s*[).:\]]\s*\S")
_INLINE = re.compile(r"\s\(?[Aa][).]\s.+\s\(?[Bb][).]\s.+$")
_CUE = re.compile(
    r"^\s*(?:answer|a|the answer is|final answer|correct answer)\s*[:\uff1a]?\s*\(?\s*\)?\s*$"
    r"|^\s*(?:please\s+)?(?:answer|respond|reply|choose|select|pick)\b.{0,120}"
    r"(?:letter|option|choice|choices|answer|number|only|below|above)\b.*$",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^\s*the following (?:is a|are) multiple[- ]choice questions?\b.*$", re.IGNORECASE
)

_LABEL = re.compile(r"^\s*(?:question|q)\s*[:.]\s*", re.IGNORECASE)


def _drop_choices(lines: list[str]) -> list[str]:
    """Remove a trailing run of choice lines lettered A, B, C, ... (two or more)."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = end
    letters: list[str] = []
    while start > 0:
        found = _CHOICE.match(lines[start - 1])
        if found is None:
            if not lines[start - 1].strip() and letters:  # a blank line inside the block
                start -= 1
                continue
            break
        letters.append(found.group(1).lower())
        start -= 1
    letters.reverse()
    if len(letters) >= 2 and letters == [chr(ord("a") + i) for i in range(len(letters))]:
        return lines[:start]
    return lines


def stem(text: str) -> str:
    """The question stem of `text` (see the module doc); `text` itself when nothing applies."""
    lines = text.rstrip().split("\n")
    for _ in range(3):  # cue after choices after cue: peel a few layers at most
        while lines and (not lines[-1].strip() or _CUE.match(lines[-1])):
            lines.pop()
        before = len(lines)
        lines = _drop_choices(lines)
        if lines and len(lines) == before:
            inline = _INLINE.search(lines[-1])
            if inline is not None and inline.start() > 0:
                lines[-1] = lines[-1][: inline.start()]
        if len(lines) == before:
            break
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and _PREAMBLE.match(lines[0]):
        lines.pop(0)
    out = _LABEL.sub("", "\n".join(lines).strip(), count=1)
    return out if out else text
