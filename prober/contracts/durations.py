"""Human durations (`500ms`, `30s`, `5m`, `1h`, `1m30s`, `28d`) used across config and settings.

Days exist for SLO windows (`window: 28d`); every other field accepts them too, since a
longer spelling of the same number of seconds is harmless.
"""

import re
from typing import Annotated

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Return seconds for a duration string; raise ValueError naming the accepted forms."""
    compact = text.strip()
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 28d"
        )
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def _coerce(value: object) -> object:
    """Accept duration strings; bare numbers are rejected so that `30` is never silently ms or s."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"duration {value!r} has no unit: write e.g. '{value}s'")
    return value


Duration = Annotated[float, BeforeValidator(_coerce)]
"""Seconds, written in config as a duration string."""
