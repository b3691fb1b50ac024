"""Time by component: whose part of the flow (the app's, the IdP's) a run spent its time in.

The contract, relied on by the "total vs total without <component>" chart: for a run,
the durations returned here add up to the run's `duration_seconds` (the steps, browser
launch excluded). Each step's time goes to its component; time the run spent outside
any step (a script's code between steps; next to nothing in a declarative scenario)
goes to the scenario's own component, which is where such code belongs.
"""

from prober.contracts.result import RunResult


def component_durations(result: RunResult, own_component: str) -> dict[str, float]:
    """Seconds per component for one run; `own_component` is the scenario's `component`."""
    totals: dict[str, float] = {}
    for step in result.steps:
        totals[step.component] = totals.get(step.component, 0.0) + step.duration_seconds
    outside = result.duration_seconds - sum(totals.values())
    # Never negative: rounding in the worker's two clocks readings may leave -1e-9.
    totals[own_component] = totals.get(own_component, 0.0) + max(outside, 0.0)
    return totals


def component_outcomes(result: RunResult) -> dict[str, bool]:
    """For each component the run reached: True if all its steps passed.

    A component whose steps the run never reached (they come after the failed one) is
    left out: the run says nothing about it.
    """
    outcomes: dict[str, bool] = {}
    for step in result.steps:
        outcomes[step.component] = outcomes.get(step.component, True) and step.ok
    return outcomes
