"""Human durations (`500ms`, `30s`, `5m`, `1h`, `1m30s`, `28d`) used across config and settings.

Days exist for SLO windows (`window: 28d`); every other field accepts them too, since a
longer spelling of the same number of seconds is harmless.
"""

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Beyond any sane setting, and far inside what a float, a timestamp and asyncio handle:
# 400 digits would otherwise become infinity.
MAX_SECONDS = 366 * 86400.0


def parse_duration(text: str) -> float:
    """Return seconds for a duration string; raise ValueError naming the accepted forms.

    Messages quote the text as written, never repr()'d: escaping would defeat the
    masking of a value that came from the environment.
    """
    compact = text.strip()
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(
            f"invalid duration '{text}': use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 28d"
        )
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError(f"duration is too long: at most {format_seconds(MAX_SECONDS)}")
    return seconds


def format_seconds(seconds: float) -> str:
    """The largest whole unit: `30d`, `1h`, `90s` (for limits in messages)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _coerce(value: object) -> object:
    """Accept duration strings only: `30` is never silently ms or s, nor `true` one second."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool):
        raise ValueError("a duration is a string with a unit, e.g. '30s', not a boolean")
    if isinstance(value, int | float):
        raise ValueError(f"duration {value} has no unit: write e.g. '{value}s'")
    raise ValueError("a duration is a string with a unit, e.g. '30s'")


def at_most(limit: float) -> AfterValidator:
    """A bound on a Duration field, said in its own units rather than in seconds."""

    def check(seconds: float) -> float:
        if seconds > limit:
            raise ValueError(f"at most {format_seconds(limit)}")
        return seconds

    return AfterValidator(check)


Duration = Annotated[float, BeforeValidator(_coerce)]
"""Seconds, written in config as a duration string."""
