"""B2: step durations reported by prober vs the same steps timed in a bare Playwright script.

Rounds alternate a baseline run and a prober run (WorkerRunner as `prober serve` makes
it, pre-started browser) against the same site. A second phase slows the IdP page's
response by 300 ms: every run's `idp_page_loaded` must then show at least 0.30 s.
"""

import argparse
import asyncio
import statistics
from typing import Any

from playwright.async_api import async_playwright

from bench.common import (
    BROWSER,
    STEPS,
    baseline_run,
    demo_scenario,
    load,
    serve_target,
    summary,
    write_result,
)
from prober.contracts.secrets import Redactor
from prober.supervise.browser import DEFAULT_ARGS
from prober.supervise.pool import Prewarm
from prober.supervise.runner import WorkerRunner

DELAY = 0.300
DELAYED_PATH = "/idp/authorize"


async def measure(rounds: int, delayed_rounds: int, prewarm: Prewarm) -> dict[str, Any]:
    load_before = load()
    async with serve_target() as target, async_playwright() as playwright:
        scenario = demo_scenario(target.url)
        runner = WorkerRunner(BROWSER, DEFAULT_ARGS, Redactor(()), prewarm=prewarm)
        runner.start()
        try:
            await baseline_run(playwright, target.url)  # warm-up, not measured
            await runner.run(scenario)
            base: dict[str, list[float]] = {s: [] for s in STEPS}
            prober: dict[str, list[float]] = {s: [] for s in STEPS}
            diffs: dict[str, list[float]] = {s: [] for s in STEPS}
            for _ in range(rounds):
                b = (await baseline_run(playwright, target.url))["steps"]
                await asyncio.sleep(1.0)  # the pool prepares the next worker
                result = await runner.run(scenario)
                assert result.ok, result.error
                p = {s.name: s.duration_seconds for s in result.steps}
                await asyncio.sleep(1.0)
                for step in STEPS:
                    base[step].append(b[step])
                    prober[step].append(p[step])
                    diffs[step].append(p[step] - b[step])
            target.delays[DELAYED_PATH] = DELAY
            delayed: list[float] = []
            delayed_base: list[float] = []
            for _ in range(delayed_rounds):
                delayed_base.append(
                    (await baseline_run(playwright, target.url))["steps"]["idp_page_loaded"]
                )
                await asyncio.sleep(1.0)
                result = await runner.run(scenario)
                assert result.ok, result.error
                delayed.append(
                    next(s.duration_seconds for s in result.steps if s.name == "idp_page_loaded")
                )
                await asyncio.sleep(1.0)
        finally:
            await runner.close()
    per_step = {
        step: {
            "baseline_median": statistics.median(base[step]),
            "prober_median": statistics.median(prober[step]),
            "median_difference": statistics.median(diffs[step]),
            "difference_of_medians": statistics.median(prober[step])
            - statistics.median(base[step]),
        }
        for step in STEPS
    }
    return {
        "rounds": rounds,
        "prewarm": prewarm,
        "loadavg_before": load_before,
        "loadavg_after": load(),
        "steps": per_step,
        "delay": {
            "injected_seconds": DELAY,
            "path": DELAYED_PATH,
            "prober_idp_page_loaded": summary(delayed),
            "baseline_idp_page_loaded": summary(delayed_base),
            "runs_below_delay": sum(d < DELAY for d in delayed),
        },
        "raw": {"baseline": base, "prober": prober, "delayed": delayed},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--prewarm", default="browser", choices=["none", "driver", "browser"])
    args = parser.parse_args(argv)
    rounds, delayed_rounds = (3, 3) if args.quick else (args.rounds, 8)
    report = asyncio.run(measure(rounds, delayed_rounds, args.prewarm))
    print(f"B2 accuracy ({rounds} rounds, load {report['loadavg_before'][0]:.2f})")
    for step, r in report["steps"].items():
        print(
            f"  {step:<22} baseline {r['baseline_median'] * 1000:7.1f} ms  prober "
            f"{r['prober_median'] * 1000:7.1f} ms  median diff "
            f"{r['median_difference'] * 1000:+6.1f} ms (target within 20 ms)"
        )
    d = report["delay"]
    print(
        f"  +300 ms on {d['path']}: idp_page_loaded min "
        f"{d['prober_idp_page_loaded']['min']:.3f}s, median "
        f"{d['prober_idp_page_loaded']['median']:.3f}s, runs below 0.30 s: "
        f"{d['runs_below_delay']} of {d['prober_idp_page_loaded']['n']}"
    )
    print(f"  -> {write_result('b2_accuracy', report)}")
    return report


if __name__ == "__main__":
    main()
