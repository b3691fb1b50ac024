"""Limits on runs triggered over HTTP: each one launches a browser against a real target.

Two limits, because they protect different things: a per-scenario cooldown keeps one
eager client (or a retry loop in someone's script) from hammering one target, and a
global token bucket bounds the extra browser load on this replica across all scenarios.
"""

import math
import time
from collections.abc import Callable


class TriggerLimiter:
    def __init__(
        self,
        cooldown_seconds: float,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cooldown = cooldown_seconds
        self._capacity = float(per_minute)
        self._refill_per_second = per_minute / 60.0
        self._clock = clock
        self._tokens = self._capacity
        self._refilled_at = clock()
        self._last: dict[str, float] = {}

    def retry_after(self, scenario: str) -> int:
        """0 if a trigger of `scenario` is allowed now, else whole seconds to wait."""
        now = self._refill()
        waits = [0.0]
        last = self._last.get(scenario)
        if last is not None:
            waits.append(last + self._cooldown - now)
        if self._tokens < 1:
            waits.append((1 - self._tokens) / self._refill_per_second)
        wait = max(waits)
        return math.ceil(wait) if wait > 0 else 0

    def take(self, scenario: str) -> None:
        """Count an accepted trigger; call only after retry_after() returned 0."""
        now = self._refill()
        self._tokens -= 1
        self._last[scenario] = now

    def _refill(self) -> float:
        now = self._clock()
        elapsed = now - self._refilled_at
        self._tokens = min(self._capacity, self._tokens + elapsed * self._refill_per_second)
        self._refilled_at = now
        return now
