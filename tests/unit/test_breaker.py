"""The circuit breaker's state machine, with a simulated clock: consecutive failures, the
failure rate over a window with a minimum volume, half-open probes."""

from __future__ import annotations

from router.gates.breaker import Breaker, BreakerState


def _state(b: Breaker) -> BreakerState:
    """`b.state`, read afresh (mypy keeps a narrowed attribute across method calls)."""
    return b.state


def test_opens_after_consecutive_failures_and_refuses_during_cooldown() -> None:
    b = Breaker(failures=3, cooldown_s=10)
    for _ in range(2):
        assert b.allow(0)
        b.failure(0)
    assert b.state == "closed"
    b.success(0)  # a success resets the count
    for _ in range(3):
        assert b.allow(1)
        b.failure(1)
    assert _state(b) == "open"
    assert not b.allow(5)


def test_half_open_lets_one_probe_through() -> None:
    b = Breaker(failures=1, cooldown_s=10)
    b.failure(0)
    assert b.allow(10.5)  # cooldown over: the probe
    assert b.state == "half_open"
    assert not b.allow(10.6)  # only one probe at a time
    b.success(10.6)
    assert _state(b) == "closed" and b.allow(10.7)


def test_a_failed_probe_opens_it_again() -> None:
    b = Breaker(failures=5, cooldown_s=10)
    for _ in range(5):
        b.failure(0)
    assert b.allow(11)
    b.failure(11)
    assert b.state == "open" and not b.allow(15) and b.allow(21.5)


def test_a_failure_rate_over_the_window_opens_it_once_the_volume_is_there() -> None:
    b = Breaker(failures=100, cooldown_s=10, window_s=30, failure_rate=0.5, min_requests=20)
    for i in range(9):  # 9 of 18 failed: the rate is there, the volume is not
        b.success(i)
        b.failure(i + 0.5)
    assert (b.calls, b.failed, b.state) == (18, 9, "closed")
    b.success(9)
    b.failure(9.5)  # 10 of 20
    assert _state(b) == "open" and not b.allow(10)


def test_a_rate_below_the_threshold_never_opens_it() -> None:
    b = Breaker(failures=5, cooldown_s=10, window_s=30, failure_rate=0.5, min_requests=20)
    for i in range(1000):  # 20 % of calls fail, never two in a row
        now = i * 0.1
        if i % 5 == 0:
            b.failure(now)
        else:
            b.success(now)
        assert b.state == "closed"
    assert b.calls <= 310  # only the last 30 s are kept


def test_old_failures_leave_the_window() -> None:
    b = Breaker(failures=100, cooldown_s=10, window_s=30, failure_rate=0.5, min_requests=20)
    for _ in range(15):
        b.failure(0)
    for i in range(25):
        b.success(31 + i * 0.1)  # the failures at t=0 are gone
    assert (b.calls, b.failed) == (25, 0)
    for _ in range(12):
        b.failure(34)
    assert b.state == "closed"  # 12 of 37
    b.failure(34)
    b.failure(34)  # ... 14 of 39: still under half
    assert _state(b) == "closed"


def test_consecutive_failures_open_it_whatever_the_volume() -> None:
    b = Breaker(failures=3, cooldown_s=10, window_s=30, failure_rate=0.9, min_requests=1000)
    for _ in range(50):
        b.success(0)
    for t in (1, 2, 3):
        b.failure(t)
    assert b.state == "open"


def test_a_successful_probe_empties_the_window() -> None:
    b = Breaker(failures=100, cooldown_s=10, window_s=30, failure_rate=0.5, min_requests=4)
    for _ in range(4):
        b.failure(0)
    assert b.state == "open"
    assert b.allow(10)
    b.success(10)
    assert (_state(b), b.calls, b.failed) == ("closed", 1, 0)
    b.failure(10.5)  # one failure after the probe: 1 of 2, but under min_requests
    assert _state(b) == "closed"


def test_a_neutral_probe_frees_the_slot_for_the_next_one() -> None:
    b = Breaker(failures=1, cooldown_s=10)
    b.failure(0)
    assert b.allow(10)
    assert not b.allow(10.1)
    b.neutral()  # e.g. the probe's request failed on the other tier too
    assert b.state == "half_open" and b.allow(10.2)
    b.failure(10.3)
    assert _state(b) == "open" and not b.allow(15)


def test_unchecked_failures_never_make_a_streak() -> None:
    b = Breaker(failures=3, min_requests=10, failure_rate=0.5)
    for _ in range(9):  # nine unchecked failures in a row: below the volume, no streak
        b.failure(0, streak=False)
    assert b.state == "closed" and b.consecutive == 0
    b.failure(0, streak=False)  # the tenth: the rate over the window opens it
    assert _state(b) == "open"


def test_unchecked_failures_count_towards_the_rate_with_checked_ones() -> None:
    b = Breaker(failures=5, min_requests=10, failure_rate=0.5)
    for _ in range(4):
        b.failure(0)
        b.failure(0, streak=False)
    assert b.state == "closed" and b.consecutive == 4
    b.success(1)
    b.failure(1, streak=False)  # 9 of 10 failed
    assert _state(b) == "open"


def test_an_unchecked_probe_failure_keeps_it_half_open_and_frees_the_slot() -> None:
    b = Breaker(failures=1, cooldown_s=10, min_requests=100)
    b.failure(0)
    assert b.allow(10.5) and b.state == "half_open"
    b.failure(10.6, streak=False)
    assert _state(b) == "half_open"
    assert b.allow(10.7)  # the next probe
    b.failure(10.8)  # a checked failure opens it again
    assert _state(b) == "open"
