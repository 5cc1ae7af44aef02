"""The settings every property test shares (hypothesis).

No example database: a failure found is pinned beside its property as an `@example`, so runs
leave nothing behind. `FUZZ_SCALE=20 pytest tests/unit/test_fuzz_*.py` searches 20 times harder
than the suite's default, which keeps each property to seconds.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def examples(n: int) -> int:
    """`n` examples, times FUZZ_SCALE (1 by default)."""
    return max(1, int(n * float(os.environ.get("FUZZ_SCALE", "1"))))


FUZZ = settings(
    max_examples=examples(300),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fuzz(n: int) -> settings:
    """FUZZ with `n` examples (scaled)."""
    return settings(FUZZ, max_examples=examples(n))
