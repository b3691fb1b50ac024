"""When a run is retried: the whole policy in one place so docs and code agree.

A retry is a new run (own run id, own history entry, counted in
`prober_scenario_runs_total`), so flakiness stays visible in `rate()` even when the final
attempt succeeds; `prober_scenario_last_successful` follows the final attempt.

- Only `failure` and `timeout` are retried: they are verdicts on the target, and a second
  look tells a blip from an outage. `error` means our own environment broke (no browser,
  crashed worker); running again at once would fail the same way and hide nothing.
- A retry starts only while less than one `interval` has passed since the first attempt
  started, so retries of a slow, failing target cannot delay the schedule by more than
  about one interval plus one timeout.
"""

from prober.contracts.config import Scenario
from prober.contracts.result import Outcome, RunResult

RETRIED = frozenset({Outcome.FAILURE, Outcome.TIMEOUT})


def should_retry(scenario: Scenario, result: RunResult, elapsed: float) -> bool:
    """`elapsed`: seconds since the first attempt of this run started."""
    return (
        result.result in RETRIED
        and result.attempt <= scenario.retries
        and elapsed < scenario.interval
    )
