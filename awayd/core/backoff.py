"""Reconnect delays: exponential growth with full jitter, randomness passed in by the caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: Past this many doublings every policy we use has long reached its cap; bounding the
#: exponent keeps `factor ** attempt` from overflowing after days of failures.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class BackoffPolicy:
    """How long to wait before retry number `attempt` (0 for the first retry), in seconds.

    Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the reconnects
    of many mailboxes that lost the same server at the same moment.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base:
            raise ValueError(f"backoff needs base > 0, factor >= 1 and cap >= base, got {self}")

    def ceiling(self, attempt: int) -> float:
        """The largest delay retry number `attempt` may get: base * factor**attempt, capped."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        return min(self.cap, self.base * self.factor**exponent)

    def delay(self, attempt: int, draw: float) -> float:
        """The delay for retry number `attempt`, given `draw` uniform in [0, 1)."""
        if not 0.0 <= draw < 1.0:
            raise ValueError(f"draw must be in [0, 1), got {draw!r}")
        return draw * self.ceiling(attempt)


class Backoff:
    """Counts consecutive failures of one connection and turns them into delays.

    Args:
        rand: returns a float uniform in [0, 1), e.g. `random.Random().random`; passed in so
            tests can fix it.
        policy: the growth and the cap.
    """

    def __init__(self, rand: Callable[[], float], policy: BackoffPolicy | None = None) -> None:
        self._rand = rand
        self.policy = policy if policy is not None else BackoffPolicy()
        self._attempt = 0

    @property
    def attempts(self) -> int:
        """Failures since the last success (or since creation)."""
        return self._attempt

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next try."""
        delay = self.policy.delay(self._attempt, self._rand())
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Record a success: the next failure waits at most `base` again."""
        self._attempt = 0
