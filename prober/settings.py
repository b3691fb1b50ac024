"""Process settings from `PROBER_*` environment variables (names are a contract, see README)."""

import itertools
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from prober.durations import Duration

# Browser flows take tens of milliseconds per step up to a minute per run.
DEFAULT_SCENARIO_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)
DEFAULT_STEP_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROBER_", extra="ignore", validate_default=False)

    config: Path | None = None
    listen: str = "0.0.0.0:8080"
    max_concurrency: int = Field(default=2, ge=1, le=64)
    browser_path: Path | None = None
    browser_args: Annotated[list[str], NoDecode] = []
    data_dir: Path | None = None
    api_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    grace_period: Duration = 30.0
    location: str | None = None
    # Scenarios start at a random offset up to min(interval, this) so that a restart does
    # not launch every browser at once.
    max_start_offset: Duration = 30.0
    scenario_buckets: Annotated[tuple[float, ...], NoDecode] = DEFAULT_SCENARIO_BUCKETS
    step_buckets: Annotated[tuple[float, ...], NoDecode] = DEFAULT_STEP_BUCKETS

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("browser_args", mode="before")
    @classmethod
    def _split_args(cls, value: Any) -> Any:
        """`PROBER_BROWSER_ARGS="--lang=de --window-size=1280,800"`, split like a shell would."""
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("scenario_buckets", "step_buckets", mode="before")
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
