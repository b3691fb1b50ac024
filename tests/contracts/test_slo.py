"""The `slo:` block: percentages kept exact, windows in whole days, clear refusals.

The error messages as `prober check` prints them are in tests/configs/bad/slo_*.yaml.
"""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from prober.contracts.durations import parse_duration
from prober.contracts.slo import SLO, LatencyObjective


@pytest.mark.parametrize(
    ("written", "ratio"),
    [("99.5%", "0.995"), ("99.95 %", "0.9995"), (99.5, "0.995"), (95, "0.95"), ("50", "0.5")],
)
def test_objective_is_an_exact_ratio(written: object, ratio: str) -> None:
    assert SLO.model_validate({"objective": written}).objective == Decimal(ratio)


@pytest.mark.parametrize("written", ["100%", 0, "-1%", "nan%", "inf", "high", True, [99]])
def test_objective_outside_zero_to_hundred_is_refused(written: object) -> None:
    with pytest.raises(ValidationError, match="objective"):
        SLO.model_validate({"objective": written})


def test_a_ratio_is_refused_with_the_percentage_it_probably_meant() -> None:
    with pytest.raises(ValidationError, match=r"write it as a percentage, e.g. 99.5%"):
        SLO.model_validate({"objective": 0.995})
    # Spelled as a percentage, a tiny objective is what the author wrote.
    assert SLO.model_validate({"objective": "0.5%"}).objective == Decimal("0.005")


def test_window_defaults_to_28_days_and_must_be_whole_days_of_at_least_three() -> None:
    assert SLO.model_validate({"objective": "99%"}).window_days == 28
    assert SLO.model_validate({"objective": "99%", "window": "7d"}).window_days == 7
    assert SLO.model_validate({"objective": "99%", "window": "72h"}).window_days == 3
    for bad in ("36h", "2d", "1d12h"):
        with pytest.raises(ValidationError, match="whole number of days, at least 3d"):
            SLO.model_validate({"objective": "99%", "window": bad})


def test_latency_only_is_allowed_and_an_empty_block_is_not() -> None:
    slo = SLO.model_validate({"latency": {"duration_under": "1500ms", "objective": "95%"}})
    assert slo.objective is None
    assert slo.latency == LatencyObjective(duration_under="1500ms", objective="95%")
    assert (slo.latency.duration_under, slo.latency.objective) == (1.5, Decimal("0.95"))
    with pytest.raises(ValidationError, match="give an availability 'objective'"):
        SLO.model_validate({"window": "28d"})


def test_days_are_a_duration_unit_everywhere_and_old_forms_still_parse() -> None:
    assert parse_duration("28d") == 28 * 86400
    assert parse_duration("1d12h") == 36 * 3600
    assert [parse_duration(t) for t in ("500ms", "30s", "5m", "1h", "1m30s")] == [
        0.5,
        30,
        300,
        3600,
        90,
    ]
