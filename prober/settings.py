"""Process settings from `PROBER_*` environment variables (names are a contract, see README)."""

import itertools
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from prober.contracts.cabundle import read_ca_bundle
from prober.contracts.durations import Duration

# Browser flows take tens of milliseconds per step up to a minute per run.
DEFAULT_SCENARIO_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)
DEFAULT_STEP_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60)
# One page's phases: a few ms (TTFB from a nearby server) to tens of seconds.
DEFAULT_PAGE_TIMING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROBER_", extra="ignore", validate_default=False)

    config: Path | None = None
    listen: str = "0.0.0.0:8080"
    max_concurrency: int = Field(default=2, ge=1, le=64)
    browser_path: Path | None = None
    browser_args: Annotated[list[str], NoDecode] = []
    # Unset: no failure artifacts are kept (and no trace is recorded).
    data_dir: Path | None = None
    trace_on_success: bool = False
    artifact_max_age: Duration = 7 * 24 * 3600.0
    artifact_max_bytes: int = Field(default=1 << 30, ge=0)
    api_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    grace_period: Duration = 30.0
    location: str | None = None
    # Scenarios start at a random offset up to min(interval, this) so that a restart does
    # not launch every browser at once.
    max_start_offset: Duration = 30.0
    # Run history in {data_dir}/history.sqlite3: failures (failure, timeout, error) are
    # kept longer than successes so the last failure is still there when someone looks.
    history_retention: Duration = 7 * 24 * 3600.0
    history_failure_retention: Duration = 30 * 24 * 3600.0
    # POST /api/scenarios/{name}/runs: at most one per scenario per cooldown, and at most
    # this many per minute in total, so the API cannot turn prober into a load generator.
    api_trigger_cooldown: Duration = 10.0
    api_triggers_per_minute: int = Field(default=10, ge=1, le=600)
    # What `prober serve` starts ahead of each run during the idle interval (see
    # prober/supervise/pool.py): `browser` makes a tick cost about what a bare Playwright script's
    # run costs, for one idle browser per concurrency slot; `none` starts each worker cold.
    prewarm: Literal["none", "driver", "browser"] = "browser"
    # `context`: one long-lived worker (driver and browser) per concurrency slot, a fresh
    # BrowserContext per run (prober/supervise/slots.py); `process`: a worker process per
    # run. The slot is recycled after slot_max_runs runs, slot_max_age, slot_max_memory bytes
    # of its tree's PSS, a browser crash, and any run that timed out.
    isolation: Literal["process", "context"] = "context"
    slot_max_runs: int = Field(default=100, ge=1)
    slot_max_age: Duration = Field(default=3600.0, gt=0)
    slot_max_memory: int = Field(default=1 << 30, ge=1 << 26)
    # Live reload: how often the scenario file's resolved path, inode and mtime are checked.
    config_poll_interval: Duration = Field(default=2.0, gt=0)
    # Sharded mode (docs/operations.md): off unless shard_count is set.
    shard_index: int | None = Field(default=None, ge=0)
    shard_count: int | None = Field(default=None, ge=1)
    shard_replicas: int = Field(default=2, ge=1)
    pod_name: str | None = None
    scenario_buckets: Annotated[tuple[float, ...], NoDecode] = DEFAULT_SCENARIO_BUCKETS
    step_buckets: Annotated[tuple[float, ...], NoDecode] = DEFAULT_STEP_BUCKETS
    page_timing_buckets: Annotated[tuple[float, ...], NoDecode] = DEFAULT_PAGE_TIMING_BUCKETS
    # PEM bundle of private CAs every run's browser trusts (prober.worker.trust).
    ca_file: Path | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("browser_args", mode="before")
    @classmethod
    def _split_args(cls, value: Any) -> Any:
        """`PROBER_BROWSER_ARGS="--lang=de --window-size=1280,800"`, split like a shell would."""
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("scenario_buckets", "step_buckets", "page_timing_buckets", mode="before")
    @classmethod
    def _buckets(cls, value: Any) -> Any:
        """`0.1,0.5,1,5` in seconds; strictly increasing so the histogram is valid."""
        if isinstance(value, str):
            try:
                value = tuple(float(part) for part in value.replace(" ", "").split(",") if part)
            except ValueError:
                raise ValueError("buckets are comma-separated seconds, e.g. 0.1,0.5,1,5") from None
        if isinstance(value, tuple | list) and (
            not value or any(b <= a for a, b in itertools.pairwise(value))
        ):
            raise ValueError("buckets must be a non-empty, strictly increasing list")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_ca_bundle(value)  # CABundleError is a ValueError: a settings error
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::]:8080`) -> (host, port); a clear error otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {value!r} must be host:port, e.g. 0.0.0.0:8080")
    return host.strip("[]") or "0.0.0.0", int(port)
