"""The circuit breaker's state machine, with a simulated clock."""

from __future__ import annotations

from router.breaker import Breaker


def test_opens_after_consecutive_failures_and_refuses_during_cooldown() -> None:
    b = Breaker(failures=3, cooldown_s=10)
    for _ in range(2):
        assert b.allow(0)
        b.failure(0)
    assert b.state == "closed"
    b.success()  # a success resets the count
    for _ in range(3):
        assert b.allow(1)
        b.failure(1)
    assert b.state == "open"
    assert not b.allow(5)


def test_half_open_lets_one_probe_through() -> None:
    b = Breaker(failures=1, cooldown_s=10)
    b.failure(0)
    assert b.allow(10.5)  # cooldown over: the probe
    assert b.state == "half_open"
    assert not b.allow(10.6)  # only one probe at a time
    b.success()
    assert b.state == "closed" and b.allow(10.7)


def test_a_failed_probe_opens_it_again() -> None:
    b = Breaker(failures=5, cooldown_s=10)
    for _ in range(5):
        b.failure(0)
    assert b.allow(11)
    b.failure(11)
    assert b.state == "open" and not b.allow(15) and b.allow(21.5)
