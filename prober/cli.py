"""Command line: `prober serve | run | check | rules | demo` (verbs and exit codes are a contract).

Exit codes: 0 success, 1 a run that failed or timed out (or hit an error), 2 bad input
(config, settings, arguments). Bad input prints one message naming what is wrong.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prober.contracts.config import Config, ConfigError, load_config
from prober.contracts.result import RunResult
from prober.contracts.secrets import MIN_LENGTH, Redactor
from prober.logs import setup_logging
from prober.record import traces
from prober.schedule.sharding import ShardError
from prober.settings import Settings
from prober.slo.rules import FORMATS, generate
from prober.supervise import processes
from prober.supervise.wiring import locate_browser, make_runner

EXIT_BAD_INPUT = 2


class BadInputError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        handler = {"serve": _serve, "run": _run, "check": _check, "rules": _rules, "demo": _demo}[
            args.verb
        ]
        return handler(settings, args)
    except (BadInputError, ConfigError, ShardError) as exc:
        print(f"prober {args.verb}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prober", description="Browser-driven SLA probes exported as Prometheus metrics."
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    config_help = "scenario file (default: $PROBER_CONFIG)"
    listen_help = "HTTP listen address host:port (default: $PROBER_LISTEN or 0.0.0.0:8080)"
    serve = verbs.add_parser("serve", help="run all scenarios on schedule and serve /metrics")
    serve.add_argument("--config", help=config_help)
    serve.add_argument("--listen", help=listen_help)
    run = verbs.add_parser("run", help="run one scenario once and print its result as JSON")
    run.add_argument("--config", help=config_help)
    run.add_argument("name", help="scenario name")
    check = verbs.add_parser("check", help="validate a scenario file")
    check.add_argument("--config", help=config_help)
    rules = verbs.add_parser(
        "rules", help="print Prometheus recording rules and burn-rate alerts for the SLOs"
    )
    rules.add_argument("--config", help=config_help)
    rules.add_argument(
        "--format",
        choices=FORMATS,
        default="rules",
        help="a Prometheus rule file (default) or a Prometheus Operator PrometheusRule",
    )
    demo = verbs.add_parser("demo", help="serve the bundled demo scenarios against a demo site")
    demo.add_argument("--listen", help=listen_help)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key in ("config", "listen")
        if (value := getattr(args, key, None)) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_setting_name(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors(include_url=False)
        )
        raise BadInputError(f"invalid settings: {problems}") from None


def _setting_name(loc: tuple[str | int, ...]) -> str:
    return "PROBER_" + str(loc[0]).upper() if loc else "settings"


def _load(settings: Settings, scripts_of: Sequence[str] | None = None) -> Config:
    if settings.config is None:
        raise BadInputError("no scenario file: pass --config FILE or set PROBER_CONFIG")
    return load_config(settings.config, scripts_of=scripts_of)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here, not at the top: the other verbs need none of the serving side
    # (aiohttp, metrics, history, HTTP pages), and a one-shot `prober run` paid ~0.25 CPU-s
    # for it. tests/test_layout.py holds `run` and `check` to that.
    from prober.service import serve

    config = _load(settings)
    setup_logging(settings.log_level, settings.log_format, Redactor(config.secrets))
    if warning := short_secret_warning(config):
        logging.getLogger("prober").warning(warning)
    return asyncio.run(serve(settings, config))


def _check(settings: Settings, args: argparse.Namespace) -> int:
    config = _load(settings)
    names = ", ".join(s.name for s in config.scenarios)
    print(f"{config.path}: ok, {len(config.scenarios)} scenario(s): {names}")
    if warning := short_secret_warning(config):
        # A warning, not an error: a short PIN is legitimate, and runs work with it.
        print(f"prober check: warning: {warning}", file=sys.stderr)
    return 0


def short_secret_warning(config: Config) -> str | None:
    """Names the variables (never the values) too short to be masked inside text."""
    if not config.short_secret_variables:
        return None
    return (
        f"{', '.join(config.short_secret_variables)}: shorter than {MIN_LENGTH} characters, "
        "so masked only where it is a whole value (a quoted string, a form field, an "
        "element's text), not inside other text; see README, Secrets"
    )


def _rules(settings: Settings, args: argparse.Namespace) -> int:
    if settings.config is None:
        raise BadInputError("no scenario file: pass --config FILE or set PROBER_CONFIG")
    sys.stdout.write(generate(settings.config, args.format))
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    # Only this scenario's script is import-checked: the others do not run.
    config = _load(settings, scripts_of=[args.name])
    scenario = config.scenario(args.name)
    redact = Redactor(config.secrets)
    setup_logging(settings.log_level, "text", redact)
    processes.become_subreaper()
    browser, _ = locate_browser(settings)
    runner = make_runner(settings, config, browser, redact)
    spans = traces.sink_from_environment(os.environ, settings.location)
    try:
        result = asyncio.run(_until_interrupted(runner.run(scenario)))
        if result is None:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        # The run has retired its worker by now, unless Ctrl-C came before or after
        # the loop listened for it: make sure, and let no further press cut this short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        processes.kill_all_runs()
        processes.reap_orphans(exclude=set())
        raise
    if spans is not None:  # `prober run` in CI or by hand shows in Tempo too
        spans.run_ended(scenario.name, result.run_id, result, time.time())
        spans.close()
    json.dump(result.to_json(), sys.stdout, indent=2)
    print()
    return 0 if result.ok else 1


async def _until_interrupted(run: Coroutine[Any, Any, RunResult]) -> RunResult | None:
    """The run's result, or None once Ctrl-C cancelled it and it cleaned up.

    The first SIGINT cancels the run (which kills and reaps its worker's tree); further
    presses are ignored until that is done. asyncio.run's own handler would raise
    KeyboardInterrupt at the second press wherever the loop stood, cutting the clean-up
    short and leaving the loop to warn about children it no longer waits for.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(run)

    def interrupt() -> None:
        if not task.cancelling():
            task.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        return await task
    except asyncio.CancelledError:
        if task.cancelled() and not _cancelling():
            return None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _cancelling() -> bool:
    """Whether our own task (not only the run) was cancelled."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    """The bundled site on a free local port, probed by the bundled scenarios."""
    from prober.demo.site import make_app, serve_on_loopback
    from prober.service import serve

    async def main() -> int:
        # A distinctive user name: every expanded value is masked in logs, and "demo"
        # would mask half of every line.
        os.environ.setdefault("DEMO_USER", "probe-user")
        os.environ.setdefault("DEMO_PASSWORD", "demo-password")
        site_app = make_app(os.environ["DEMO_USER"], os.environ["DEMO_PASSWORD"])
        async with serve_on_loopback(site_app) as port:
            os.environ.setdefault("DEMO_URL", f"http://127.0.0.1:{port}")
            path = Path(str(resources.files("prober.demo") / "scenarios.yaml"))
            config = load_config(path)
            setup_logging(settings.log_level, settings.log_format, Redactor(config.secrets))

            async def announce(url: str) -> None:
                print(
                    f"prober demo: probing {os.environ['DEMO_URL']}; metrics at {url}/metrics",
                    file=sys.stderr,
                    flush=True,
                )

            return await serve(settings, config, on_started=announce)

    return asyncio.run(main())
