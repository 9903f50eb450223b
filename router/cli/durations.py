"""Durations and times the CLI takes: `90s`, `30m`, `12h`, `7d` (`--span`, `--expires-in`,
`--since`) and ISO 8601 times (`--since`, `--start`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import typer

__all__ = ["duration", "is_duration", "iso_time"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def is_duration(text: str) -> bool:
    return _DURATION.match(text.strip().lower()) is not None


def duration(text: str) -> float:
    """Seconds; `typer.BadParameter` (a clean CLI error) for anything else or zero."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise typer.BadParameter(f"{text!r}: give a duration such as 90s, 30m, 12h or 7d")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value <= 0:
        raise typer.BadParameter(f"{text!r}: must be positive")
    return value


def iso_time(text: str, hint: str) -> float:
    """An ISO 8601 time (UTC unless it says otherwise) as epoch seconds; `typer.BadParameter`
    with `hint` for anything else."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: {hint}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
