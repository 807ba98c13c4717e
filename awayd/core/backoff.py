"""Retry delays: an exponential ceiling with full jitter; the random source is injectable."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

#: Past this many doublings every policy we use has long reached its cap; bounding the
#: exponent keeps `factor ** attempt` from overflowing after days of failures.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retry number `attempt` (0 for the first retry), in seconds.

    The delay is uniform between 0 and min(cap, base * factor**attempt) ("full jitter"):
    mailboxes that lost the same server at the same moment do not come back in lockstep.
    The caller counts failures; a success simply restarts the count at 0.

    Args:
        base: ceiling of the first retry.
        factor: growth of the ceiling per failure.
        cap: largest ceiling.
        rand: returns a float uniform in [0, 1); tests pass a fixed one. The default is the
            process-wide generator, which is all jitter needs.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    rand: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.factor >= 1 and self.cap >= self.base):
            raise ValueError(
                "backoff needs base > 0, factor >= 1 and cap >= base,"
                f" got base={self.base}, factor={self.factor}, cap={self.cap}"
            )

    def ceiling(self, attempt: int) -> float:
        """The largest delay retry number `attempt` may get: base * factor**attempt, capped."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        return min(self.cap, self.base * self.factor**exponent)

    def delay(self, attempt: int, draw: float | None = None) -> float:
        """The delay before retry number `attempt`; `draw` in [0, 1) replaces `rand()`."""
        value = self.rand() if draw is None else draw
        if not 0.0 <= value < 1.0:
            raise ValueError(f"a jitter draw must be in [0, 1), got {value!r}")
        return value * self.ceiling(attempt)
