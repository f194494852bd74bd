"""How long to leave a server alone after it failed: exponential, with jitter."""

from __future__ import annotations

import random

__all__ = ["BACKOFF_CAP", "BACKOFF_FIRST", "backoff_delay"]

#: The first retry after about this many seconds, doubling up to the cap.
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0


def backoff_delay(failures: int, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait after ``failures`` failures in a row, at most ``cap`` (before jitter).

    Jittered (x0.5 to x1.5), so many processes whose server went away don't
    all come back to it in step.
    """
    base: float = min(BACKOFF_FIRST * 2.0 ** (failures - 1), cap)
    return base * random.uniform(0.5, 1.5)
