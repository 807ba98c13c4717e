"""Tests for awayd.core.backoff: exponential ceilings, full jitter, cap, injected randomness."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from awayd.core.backoff import Backoff


def test_ceiling_doubles_from_one_second_up_to_five_minutes() -> None:
    backoff = Backoff()
    assert [backoff.ceiling(n) for n in range(10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_ceiling_stays_at_the_cap_after_days_of_failures() -> None:
    """A huge attempt count must neither overflow nor exceed the cap."""
    assert Backoff().ceiling(10_000_000) == 300


def test_negative_attempt_counts_as_the_first_retry() -> None:
    assert Backoff().ceiling(-1) == 1


def test_delay_is_the_draw_scaled_to_the_ceiling() -> None:
    backoff = Backoff(base=0.5, factor=3, cap=100)
    assert backoff.delay(0, 0.0) == 0.0
    assert backoff.delay(2, 0.5) == pytest.approx(0.5 * 4.5)
    assert backoff.delay(20, 0.25) == pytest.approx(25.0)


def test_injected_random_source_decides_the_jitter() -> None:
    draws = iter([0.999, 0.5, 0.0])
    backoff = Backoff(base=30, cap=3600, rand=lambda: next(draws))
    assert [backoff.delay(n) for n in (0, 3, 9)] == pytest.approx([29.97, 120.0, 0.0])


@pytest.mark.parametrize("draw", [-0.1, 1.0, 2.0])
def test_draw_outside_the_unit_interval_is_a_bug(draw: float) -> None:
    with pytest.raises(ValueError, match="draw"):
        Backoff().delay(0, draw)
    with pytest.raises(ValueError, match="draw"):
        Backoff(rand=lambda: draw).delay(0)


@pytest.mark.parametrize(("base", "factor", "cap"), [(0, 2, 300), (1, 0.5, 300), (10, 2, 5), (-1, 2, 300)])
def test_nonsensical_policies_are_refused(base: float, factor: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(base=base, factor=factor, cap=cap)


def test_full_jitter_spreads_reconnects_of_many_mailboxes() -> None:
    """With a seeded generator, 200 mailboxes failing together do not retry in lockstep."""
    backoff = Backoff(rand=random.Random(7).random)
    fifth_retries = [backoff.delay(4) for _ in range(200)]
    assert all(0 <= d < 16 for d in fifth_retries)
    assert len({round(d, 1) for d in fifth_retries}) > 100


def test_policies_compare_by_their_numbers_only() -> None:
    assert Backoff(rand=lambda: 0.5) == Backoff()


@given(
    attempt=st.integers(min_value=-5, max_value=10_000),
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
    base=st.floats(min_value=0.01, max_value=10),
    factor=st.floats(min_value=1, max_value=10),
    extra=st.floats(min_value=0, max_value=1000),
)
def test_delay_is_never_negative_nor_above_the_cap(
    attempt: int, draw: float, base: float, factor: float, extra: float
) -> None:
    backoff = Backoff(base=base, factor=factor, cap=base + extra)
    assert 0 <= backoff.delay(attempt, draw) <= backoff.cap
    assert backoff.ceiling(attempt) <= backoff.ceiling(attempt + 1)
