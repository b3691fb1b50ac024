"""`prober serve`: wiring settings, config, runner, scheduler, run sinks and HTTP together."""

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from prober import __version__, early
from prober.contracts.config import Config
from prober.contracts.secrets import Redactor
from prober.http import api, pages, statuspage
from prober.http.ratelimit import TriggerLimiter
from prober.http.server import Health, make_app
from prober.logs import set_redactor
from prober.record import traces
from prober.record.history import History, Retention
from prober.record.metrics import ProberMetrics
from prober.record.sinks import Recorder, RunLog
from prober.schedule.reload import ConfigReloader
from prober.schedule.scheduler import Scheduler
from prober.schedule.sharding import shard_from_settings
from prober.settings import Settings, parse_listen
from prober.slo import buckets as slo_buckets
from prober.supervise import processes
from prober.supervise.browser import browser_version, playwright_version
from prober.supervise.runner import WorkerRunner
from prober.supervise.slots import RECYCLE_REASONS
from prober.supervise.wiring import locate_browser, make_runner

log = logging.getLogger(__name__)
ORPHAN_REAP_SECONDS = 5.0


def make_api(
    settings: Settings, scheduler: Scheduler, history: History, redact: Redactor
) -> api.Api:
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return api.Api(
        scheduler=scheduler,
        history=history,
        redact=redact,
        token=token or None,
        artifacts_dir=settings.data_dir / "artifacts" if settings.data_dir else None,
        limiter=TriggerLimiter(settings.api_trigger_cooldown, settings.api_triggers_per_minute),
    )


async def serve(
    settings: Settings,
    config: Config,
    on_started: Callable[[str], Awaitable[None]] | None = None,
) -> int:
    """Probe until SIGTERM/SIGINT; a second signal cancels in-flight runs at once.

    SIGHUP (or a change of the scenario file) reloads the scenarios without a restart.
    """
    shard = shard_from_settings(
        settings.shard_index, settings.shard_count, settings.shard_replicas, settings.pod_name
    )
    select = shard.select if shard else tuple
    processes.become_subreaper()
    await asyncio.to_thread(processes.sweep_scratch)
    browser, browser_problem = locate_browser(settings)
    if browser_problem:
        log.error(
            "browser not found; runs will report result=error", extra={"why": browser_problem}
        )
    registry = CollectorRegistry()
    scenario_thresholds, step_thresholds = slo_buckets.thresholds(config.scenarios)
    metrics = ProberMetrics(
        registry,
        slo_buckets.with_thresholds(settings.scenario_buckets, scenario_thresholds),
        slo_buckets.with_thresholds(settings.step_buckets, step_thresholds),
        settings.page_timing_buckets,
        settings.location,
    )
    metrics.set_build_info(
        __version__, playwright_version(), browser_version(browser) if browser else "unknown"
    )
    metrics.configure(select(config.scenarios))
    metrics.config_loaded(True, time.time())
    metrics.set_history_degraded(False)
    history = await History.open(
        settings.data_dir,
        Retention(settings.history_retention, settings.history_failure_retention),
        on_degraded=lambda: metrics.set_history_degraded(True),
        on_unreadable_row=metrics.history_row_unreadable,
    )
    # One redactor for logs, runner and API; a reload adds to it in place.
    token = settings.api_token.get_secret_value() if settings.api_token else None
    redact = Redactor([*config.secrets, *([token] if token else [])])
    set_redactor(redact)
    if settings.isolation == "context":
        metrics.expect_slot_recycles(RECYCLE_REASONS)
    runner = make_runner(
        settings,
        config,
        browser,
        redact,
        settings.prewarm,
        settings.isolation,
        metrics.slot_recycled,
    )
    spans = traces.sink_from_environment(os.environ, settings.location)
    scheduler = Scheduler(
        runner.run,
        Recorder([metrics, history, RunLog(), *([spans] if spans else [])]),
        settings.max_concurrency,
        settings.max_start_offset,
    )

    def browser_state() -> str | None:
        if browser is None:
            return browser_problem
        return None if browser.exists() else f"{browser} disappeared"

    app = make_app(
        registry, Health(alive=scheduler.healthy, browser_problem=browser_state), metrics
    )
    api.install(app, make_api(settings, scheduler, history, redact))
    statuspage.install(
        app,
        pages.StatusSource(
            scheduler,
            history,
            redact,
            settings.data_dir / "artifacts" if settings.data_dir else None,
        ),
    )
    web_runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await web_runner.setup()
    host, port = parse_listen(settings.listen)
    site = web.TCPSite(web_runner, host, port)
    await site.start()
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    log.info(
        "serving",
        extra={
            "url": url,
            "scenarios": [s.name for s in select(config.scenarios)],
            "config": str(config.path),
            "shard": f"{shard.index}/{shard.count} x{shard.replicas}" if shard else None,
        },
    )
    if on_started is not None:
        await on_started(url)
    runner.start()
    scheduler.start(select(config.scenarios))
    reaper = asyncio.create_task(_reap_orphans(runner))
    reloader = ConfigReloader(config, scheduler, metrics, redact, select)
    watcher = asyncio.create_task(reloader.watch(settings.config_poll_interval))

    signals = asyncio.Queue[int]()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, signals.put_nowait, signum)
    loop.add_signal_handler(signal.SIGHUP, reloader.request)
    if early.take_hangup():  # sent while we were starting: the file may be newer than ours
        reloader.request()
    try:
        received = await signals.get()
        log.info(
            "stopping",
            extra={"signal": signal.Signals(received).name, "grace_seconds": settings.grace_period},
        )
        watcher.cancel()
        stopping = asyncio.create_task(scheduler.stop(settings.grace_period))
        hurry = asyncio.create_task(signals.get())
        await asyncio.wait([stopping, hurry], return_when=asyncio.FIRST_COMPLETED)
        if not stopping.done():
            log.warning("second signal: cancelling in-flight runs now")
            scheduler.cancel_runs()
            await stopping
        hurry.cancel()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        for task in (reaper, watcher):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await reloader.close()
        await runner.close()
        await web_runner.cleanup()
        await history.close()
        if spans is not None:
            await asyncio.to_thread(spans.close)
        processes.reap_orphans(exclude=runner.live_pids)
    log.info("stopped")
    return 0


async def _reap_orphans(runner: WorkerRunner) -> None:
    while True:
        await asyncio.sleep(ORPHAN_REAP_SECONDS)
        processes.reap_orphans(exclude=runner.live_pids)
