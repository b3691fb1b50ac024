"""B9: CPU cost per run of traces: `traceparent` routing, and OTLP export on vs off.

Three runners take turns on the same demo sign-in, round after round, in one process:

- `bare`: no trace context at all (the WorkerSpec carries no propagation);
- `propagate`: the default, `traceparent` routed onto the scenario's own origins;
- `export`: the same plus the OTLP/HTTP span sink, flushed after every run, to a
  receiver in a separate process (so its CPU is not counted).

CPU is this process's (parent, exporter thread included) plus its reaped children's
(worker, driver, Chromium: prober is their subreaper), per run; the medians of the
paired differences against `bare` are the costs. The in-process part of export (build
the spans, encode them as OTLP protobuf) is also timed alone over many runs, since it
is far below the noise of a browser run.
"""

import argparse
import asyncio
import os
import resource
import sys
import time
from typing import Any

from aiohttp import web

from bench.common import BROWSER, demo_scenario, load, serve_target, summary, write_result
from prober.contracts.config import Scenario
from prober.contracts.protocol import WorkerSpec
from prober.contracts.result import RunResult
from prober.contracts.secrets import Redactor
from prober.supervise import processes
from prober.supervise.browser import DEFAULT_ARGS
from prober.supervise.runner import WorkerRunner

MODES = ("bare", "propagate", "export")


class BareRunner(WorkerRunner):
    """The runner as it was before trace context: no propagation in the spec."""

    def _spec(
        self, scenario: Scenario, run_id: str, trace_id: str, hard_deadline: float
    ) -> WorkerSpec:
        spec = super()._spec(scenario, run_id, trace_id, hard_deadline)
        return spec.model_copy(update={"propagation": None})


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def receiver_process() -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.b9_traces", "--receiver", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    port = int((await process.stdout.readline()).decode())
    return process, f"http://127.0.0.1:{port}"


def serve_receiver() -> None:
    """A minimal OTLP/HTTP endpoint that accepts and drops: prints its port, then serves."""

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(content_type="application/x-protobuf")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", accept)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


def encode_cost(result: RunResult, rounds: int) -> float:
    """Seconds of CPU to build and encode one run's spans (what the parent adds per run)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource

    from prober.record.otlp import spans

    res = Resource.create({"service.name": "prober"})
    started = time.process_time()
    for _ in range(rounds):
        encode_spans(spans(result, result.started_at + 3, res)).SerializeToString()
    return (time.process_time() - started) / rounds


async def measure(rounds: int, pause: float) -> dict[str, Any]:
    load_before = load()
    receiver, url = await receiver_process()
    # The SDK's exporter reads it from os.environ; removed again below, or run_all's later
    # benchmarks inherit a dead endpoint and wait out the exporter's timeout at exit.
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
    from prober.record import traces

    sink = traces.sink_from_environment(os.environ, None)
    assert sink is not None
    processes.become_subreaper()
    cpu_seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    failed: dict[str, int] = dict.fromkeys(MODES, 0)
    last: RunResult | None = None
    try:
        async with serve_target() as target:
            scenario = demo_scenario(target.url)
            runners = {
                "bare": BareRunner(BROWSER, DEFAULT_ARGS, Redactor(())),
                "propagate": WorkerRunner(BROWSER, DEFAULT_ARGS, Redactor(())),
                "export": WorkerRunner(BROWSER, DEFAULT_ARGS, Redactor(())),
            }
            for runner in runners.values():  # warm-up, not measured
                await runner.run(scenario)
            for round_ in range(rounds):
                order = MODES[round_ % 3 :] + MODES[: round_ % 3]
                for mode in order:
                    await asyncio.sleep(pause)
                    processes.reap_orphans(exclude=set())
                    before = cpu()
                    result = await runners[mode].run(scenario)
                    if mode == "export":
                        sink.run_ended(scenario.name, result.run_id, result, time.time())
                        assert await asyncio.to_thread(sink.flush)
                    processes.reap_orphans(exclude=set())
                    cpu_seconds[mode].append(cpu() - before)
                    failed[mode] += not result.ok
                    last = result
    finally:
        await asyncio.to_thread(sink.close)
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        receiver.kill()
        await receiver.wait()
    assert last is not None
    report: dict[str, Any] = {
        "rounds": rounds,
        "loadavg_before": load_before,
        "loadavg_after": load(),
        "failed_runs": failed,
        "raw": cpu_seconds,
        "encode_seconds_per_run": encode_cost(last, 2000),
    }
    for mode in MODES:
        report[mode] = summary(cpu_seconds[mode])
    for mode in ("propagate", "export"):
        diffs = [a - b for a, b in zip(cpu_seconds[mode], cpu_seconds["bare"], strict=True)]
        report[f"{mode}_minus_bare"] = summary(diffs)
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--pause", type=float, default=1.0)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        serve_receiver()
        return {}
    rounds = 3 if args.quick else args.rounds
    report = asyncio.run(measure(rounds, args.pause))
    print(f"B9 trace cost, CPU per run ({rounds} rounds, load {report['loadavg_before'][0]:.2f})")
    for mode in MODES:
        r = report[mode]
        print(f"  {mode:<10} median {r['median']:.3f}s CPU  mean {r['mean']:.3f}s")
    for mode in ("propagate", "export"):
        d = report[f"{mode}_minus_bare"]
        print(
            f"  {mode} - bare: median of paired differences {d['median'] * 1000:+.0f} ms "
            f"({d['median'] / report['bare']['median'] * 100:+.1f}%)"
        )
    print(
        f"  building + encoding one run's spans: {report['encode_seconds_per_run'] * 1e6:.0f} us"
        f"; failed runs {report['failed_runs']}"
    )
    print(f"  -> {write_result('b9_traces', report)}")
    return report


if __name__ == "__main__":
    main()
