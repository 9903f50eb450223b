"""Consoles for the CLI whose output survives pipes and files.

On a terminal rich draws at the terminal's width. Piped or redirected, rich would otherwise
assume 80 columns: table cells get cut ("fron…") and messages wrapped mid-sentence. Here, when
the stream is not a terminal (and `COLUMNS` does not say otherwise), tables get all the width
they need and text lines are never wrapped: one message, one line, whatever reads it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from policies import PolicyError

__all__ = ["PIPE_WIDTH", "console", "is_terminal", "report_policy_error"]

PIPE_WIDTH = 10_000
"""The width a table may take when the output is not a terminal (natural width, never cut)."""


def is_terminal(stderr: bool = False) -> bool:
    stream = sys.stderr if stderr else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that never wraps text lines and, when not a terminal,
    draws tables at their natural width."""
    wide = not is_terminal(stderr) and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, soft_wrap=True, width=PIPE_WIDTH if wide else None)


def report_policy_error(exc: PolicyError) -> None:
    """Every problem of an invalid policy on stderr, one line each with its field path."""
    err = console(stderr=True)
    err.print(f"[bold red]invalid policy[/] {exc.source}:")
    for path, reason in exc.issues:
        err.print(f"  [yellow]{path or '<root>'}[/]: {reason}", highlight=False)
