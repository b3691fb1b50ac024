"""The `slo:` block of a scenario or step: an availability and/or a latency objective.

```yaml
slo:
  objective: 99.5%          # availability: share of valid runs that succeed
  window: 28d               # error-budget window, whole days (default 28d)
  latency:
    duration_under: 5s      # a run (or step) counts as fast when it succeeds within this
    objective: 95%          # share of valid runs that are fast
```

Objectives are percentages strictly between 0 and 100, written `99.5%` or `99.5`. They
are kept as exact decimals: `1 - 0.995` must be `0.005` in the generated PromQL, not
`0.0050000000000000044`.
"""

from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from prober.contracts.durations import Duration

DAY = 86400
# The longest window the burn-rate alerts look at (1x over 3d): a shorter budget window
# would alert on errors that are no longer in it.
LONGEST_ALERT_WINDOW_DAYS = 3


def _percent(value: object) -> object:
    """`99.5%`, `"99.5"` or `99.5` -> Decimal('0.995'); a ratio like 0.995 is refused.

    A Decimal is a ratio already (a model built in code, not read from YAML).
    """
    if isinstance(value, Decimal) and 0 < value < 1:
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"objective must be a percentage such as 99.5%, not {value!r}")
    text = str(value).strip().removesuffix("%").strip()
    try:
        percent = Decimal(text)
    except InvalidOperation:
        percent = Decimal("NaN")
    if not percent.is_finite():
        raise ValueError(f"objective {value!r} is not a percentage such as 99.5%")
    if not 0 < percent < 100:
        raise ValueError(f"objective {value!r} must be between 0% and 100%, both excluded")
    if percent < 1 and not (isinstance(value, str) and value.strip().endswith("%")):
        raise ValueError(
            f"objective {value!r} looks like a ratio: write it as a percentage, "
            f"e.g. {(percent * 100).normalize()}%"
        )
    return percent / 100


Objective = Annotated[
    Decimal,
    BeforeValidator(_percent),
    # JSON (GET /api/scenarios) shows the ratio as a number, not a decimal string.
    PlainSerializer(float, return_type=float, when_used="json"),
]
"""A target ratio in (0, 1), written in config as a percentage."""


class LatencyObjective(BaseModel):
    """`objective` of valid runs succeed within `duration_under`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_under: Duration = Field(gt=0)
    objective: Objective


class SLO(BaseModel):
    """Objectives over one error-budget window; at least one of the two kinds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: Objective | None = None
    window: Duration = 28 * DAY
    latency: LatencyObjective | None = None

    @field_validator("window")
    @classmethod
    def _whole_days(cls, window: float) -> float:
        days = window / DAY
        if days != int(days) or days < LONGEST_ALERT_WINDOW_DAYS:
            raise ValueError(
                f"window must be a whole number of days, at least "
                f"{LONGEST_ALERT_WINDOW_DAYS}d (the longest burn-rate alert window), e.g. 28d"
            )
        return window

    @model_validator(mode="after")
    def _some_objective(self) -> "SLO":
        if self.objective is None and self.latency is None:
            raise ValueError(
                "give an availability 'objective' (e.g. 99.5%), a 'latency' objective, or both"
            )
        return self

    @property
    def window_days(self) -> int:
        return int(self.window // DAY)
