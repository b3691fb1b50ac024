"""The worker runner as settings and a scenario file configure it, for `serve` and `run`.

Apart from prober.service on purpose: a one-shot `prober run` needs the runner but none
of the serving side (aiohttp, the metrics registry, the history, the HTTP pages), and
importing those cost it ~0.25 CPU-s, a tenth of the bare script it replaces.
"""

from collections.abc import Callable
from pathlib import Path

from prober.contracts.config import Config
from prober.contracts.secrets import Redactor
from prober.settings import Settings
from prober.supervise.artifacts import ArtifactRetention, ArtifactStore
from prober.supervise.browser import DEFAULT_ARGS, BrowserNotFoundError, find_browser
from prober.supervise.pool import Prewarm
from prober.supervise.runner import Isolation, WorkerRunner
from prober.supervise.slots import RecycleReason, SlotLimits


def make_runner(
    settings: Settings,
    config: Config,
    browser: Path | None,
    redact: Redactor,
    prewarm: Prewarm = "none",
    isolation: Isolation = "process",
    on_slot_recycled: Callable[[RecycleReason], None] | None = None,
) -> WorkerRunner:
    """The runner; `serve` pre-starts workers, a one-off `prober run` has nothing to gain."""
    return WorkerRunner(
        browser_path=str(browser) if browser else "chromium",
        browser_args=[*DEFAULT_ARGS, *settings.browser_args],
        redact=redact,
        # Not resolved: in a ConfigMap the file is a symlink into a timestamped directory
        # that the next update deletes; scripts must be imported through the stable path.
        python_path=[str(config.path.absolute().parent)],
        artifacts=ArtifactStore(
            settings.data_dir / "artifacts",
            ArtifactRetention(settings.artifact_max_age, settings.artifact_max_bytes),
        )
        if settings.data_dir
        else None,
        trace_on_success=settings.trace_on_success,
        prewarm=prewarm if browser else "none",
        # More runs than this cannot start at once, so more ready workers would only idle.
        pool_size=min(settings.max_concurrency, len(config.scenarios)),
        ca_file=str(settings.ca_file.absolute()) if settings.ca_file else None,
        isolation=isolation,
        slot_limits=SlotLimits(
            settings.slot_max_runs, settings.slot_max_age, settings.slot_max_memory
        ),
        on_slot_recycled=on_slot_recycled,
    )


def locate_browser(settings: Settings) -> tuple[Path | None, str | None]:
    """(path, None) or (None, why not): a missing browser degrades, it does not crash."""
    try:
        return find_browser(settings.browser_path), None
    except BrowserNotFoundError as exc:
        return None, str(exc)
