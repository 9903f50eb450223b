"""No test depends on today's date, and no component mixes an injected clock with the wall clock.

The in-process suites (unit: budgets, alerting, the budget gate, alert delivery; contract: every
ledger against memory, SQLite and the real Redis) run again in a child pytest with the wall clock
moved (``TIERWISE_TEST_CLOCK``, see ``tests/conftest.py``) to dates computed from today, so they
are always ahead of whatever date a test was written on:

- months ahead (200 days),
- the last seconds of a month (a budget window and an alert mark's expiry roll over mid-run),
- the last seconds before a DST change (Europe's, last Sunday of March at 01:00 UTC).

Issue 12 was such a bug: alert de-duplication took the test's fixed clock for the window but
compared the mark's expiry with ``time.time()``, and the suite failed once the calendar passed
the test's date.
"""

from __future__ import annotations

import calendar
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITES = ["tests/unit", "tests/contract"]


def _month_end(after: datetime) -> datetime:
    year, month = (after.year + (after.month == 12), after.month % 12 + 1)  # next month
    last = calendar.monthrange(year, month)[1]
    return datetime(year, month, last, 23, 59, 50, tzinfo=UTC)


def _before_dst(after: datetime) -> datetime:
    year = after.year + 1
    march_31 = datetime(year, 3, 31, tzinfo=UTC)
    sunday = march_31 - timedelta(days=(march_31.weekday() + 1) % 7)
    return sunday.replace(hour=0, minute=59, second=50)


def shifted_dates(today: datetime) -> dict[str, datetime]:
    """The dates the suites are run at, all after `today`."""
    return {
        "months-ahead": today + timedelta(days=200),
        "month-end": _month_end(today),
        "before-dst": _before_dst(today),
    }


def test_shifted_dates_are_ahead_and_on_their_boundaries() -> None:
    today = datetime(2026, 12, 31, 12, tzinfo=UTC)
    dates = shifted_dates(today)
    assert all(d > today for d in dates.values())
    assert dates["month-end"] == datetime(2027, 1, 31, 23, 59, 50, tzinfo=UTC)
    assert dates["before-dst"] == datetime(2027, 3, 28, 0, 59, 50, tzinfo=UTC)  # a Sunday
    assert shifted_dates(datetime(2027, 2, 10, tzinfo=UTC))["month-end"].day == 31  # March


@pytest.mark.parametrize("name", ["months-ahead", "month-end", "before-dst"])
def test_in_process_suites_pass_under_a_shifted_clock(name: str) -> None:
    when = shifted_dates(datetime.now(UTC))[name]
    env = {**os.environ, "TIERWISE_TEST_CLOCK": when.isoformat()}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", *SUITES],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "wall clock shifted to" in proc.stdout, proc.stdout[-2000:]
    assert proc.returncode == 0, f"under {when.isoformat()}:\n{proc.stdout[-6000:]}"
