"""Question-stem extraction on real prompt shapes: exam scaffolding goes, open requests stay."""

from __future__ import annotations

import pytest

from classifiers.stem import stem

MMLU = (
    "The following are multiple choice questions (with answers) about biology.\n\n"
    "Which organelle makes most of a cell's ATP?\nA. Nucleus\nB. Mitochondrion\n"
    "C. Ribosome\nD. Golgi apparatus\nAnswer:"
)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (MMLU, "Which organelle makes most of a cell's ATP?"),
        ("Which is a prime? (A) 4 (B) 6 (C) 7 (D) 9", "Which is a prime?"),
        (
            "Question: What is 2+2?\nA) 3\nB) 4\nC) 5\nD) 6\nAnswer with the letter only.",
            "What is 2+2?",
        ),
        (
            "It is known as:\n\nA. Approving\nB. Endorsing\n\nC. Prescreening\nD. None",
            "It is known as:",
        ),
    ],
)
def test_exam_scaffolding_is_removed(prompt: str, expected: str) -> None:
    assert stem(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "Janet has 3 apples. She buys 2 more. How many apples does she have?",
        "Write a poem about the sea.\nA: it must rhyme",
        "def f(x):\n    return x + 1\n\nWhat does f(2) return?",
        "Choices so far:\nB. second\nA. first",  # not lettered in order: kept
    ],
)
def test_open_requests_pass_through(prompt: str) -> None:
    assert stem(prompt) == prompt


def test_nothing_left_returns_the_prompt() -> None:
    assert stem("Answer:") == "Answer:"
    assert stem("") == ""
