"""Histogram bucket boundaries at every latency objective's `duration_under`.

A latency SLI reads `..._bucket{le="5.0"}`, so the boundary must exist exactly; prober
adds each threshold to the configured buckets (PROBER_SCENARIO_BUCKETS,
PROBER_STEP_BUCKETS) when it starts. Buckets cannot change while it runs: a threshold
that a live reload brings in is reported by `missing`, and takes effect on restart.
"""

from collections.abc import Iterable

from prober.contracts.config import Scenario
from prober.slo.rules import objectives


def thresholds(scenarios: Iterable[Scenario]) -> tuple[set[float], set[float]]:
    """(scenario-level, step-level) `duration_under` values of the latency objectives."""
    scenario_level: set[float] = set()
    step_level: set[float] = set()
    for objective in objectives(scenarios):
        if objective.duration_under is not None:
            (step_level if objective.step else scenario_level).add(objective.duration_under)
    return scenario_level, step_level


def with_thresholds(buckets: Iterable[float], extra: Iterable[float]) -> tuple[float, ...]:
    """Bucket boundaries plus any threshold not among them, sorted."""
    return tuple(sorted({*buckets, *extra}))


def missing(
    scenarios: Iterable[Scenario], scenario_buckets: Iterable[float], step_buckets: Iterable[float]
) -> list[float]:
    """Thresholds without a bucket boundary in the running histograms, sorted."""
    scenario_level, step_level = thresholds(scenarios)
    return sorted((scenario_level - set(scenario_buckets)) | (step_level - set(step_buckets)))
