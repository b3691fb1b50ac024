"""Scenario files: YAML -> `${VAR}` expansion -> validated models, or one clear ConfigError.

Every message names the file, the scenario and the field (or variable) at fault, because
the person reading it is an SRE looking at a crash-looping pod, not at a traceback.
"""

import importlib.machinery
import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from prober.contracts.actions import Action, normalize_action
from prober.contracts.durations import Duration
from prober.contracts.secrets import Redactor, is_short

SCENARIO_NAME = r"^[a-z0-9_-]+$"
STEP_NAME = r"^[a-z0-9_]+$"
_SCRIPT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")


class ConfigError(Exception):
    """A scenario file that cannot be used; the message is meant for humans as-is."""


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=STEP_NAME)
    actions: list[Annotated[Action, BeforeValidator(normalize_action)]] = Field(min_length=1)


class Scenario(BaseModel):
    """One user flow, run every `interval` after the previous run ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SCENARIO_NAME, max_length=63)
    interval: Duration = Field(gt=0)
    timeout: Duration = Field(gt=0)
    steps: list[Step] | None = Field(default=None, min_length=1)
    script: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    # Extra attempts after a failed or timed-out run (policy: prober/schedule/retries.py).
    retries: int = Field(default=0, ge=0, le=10)

    @field_validator("script")
    @classmethod
    def _script_reference(cls, value: str | None) -> str | None:
        if value is not None and not _SCRIPT_REF.match(value):
            raise ValueError(f"script {value!r} must look like 'package.module:function'")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> "Scenario":
        if (self.steps is None) == (self.script is None):
            raise ValueError("give exactly one of 'steps' (declarative) or 'script' (Python)")
        if self.steps is not None:
            names = [step.name for step in self.steps]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"step names must be unique; repeated: {', '.join(duplicates)}")
        if self.params and self.script is None:
            raise ValueError("'params' is only for Python scenarios ('script')")
        return self


class ScenarioFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenarios: list[Scenario] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "ScenarioFile":
        names = [s.name for s in self.scenarios]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"scenario names must be unique; repeated: {', '.join(duplicates)}")
        return self


@dataclass(frozen=True)
class Config:
    """A loaded scenario file and the secrets its expansion brought in."""

    path: Path
    scenarios: tuple[Scenario, ...]
    secrets: tuple[str, ...]
    # Variables whose values are too short to mask in free text (prober.secrets).
    short_secret_variables: tuple[str, ...] = ()

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        known = ", ".join(s.name for s in self.scenarios)
        raise ConfigError(f"{self.path}: no scenario named {name!r}; scenarios: {known}")


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a scenario file; raise ConfigError with a human message."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    raw = _read_yaml(path)
    secrets: dict[str, str] = {}  # variable name -> value
    expanded = _expand(raw, environ, secrets, path, raw, ())
    # Messages quote offending values, which may have come from the environment.
    redact = Redactor(secrets.values())
    try:
        parsed = ScenarioFile.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(redact(_describe(path, raw, exc))) from None
    try:
        for scenario in parsed.scenarios:
            if scenario.script is not None:
                _check_importable(path, scenario)
    except ConfigError as exc:
        raise ConfigError(redact(str(exc))) from None
    return Config(
        path=path,
        scenarios=tuple(parsed.scenarios),
        secrets=tuple(sorted(set(secrets.values()))),
        short_secret_variables=tuple(sorted(n for n, v in secrets.items() if v and is_short(v))),
    )


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: scenario file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read scenario file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'scenarios' list at the top")
    return data


def _expand(
    value: Any,
    environ: Mapping[str, str],
    secrets: dict[str, str],
    path: Path,
    root: Any,
    loc: tuple[str | int, ...],
) -> Any:
    """Replace `${VAR}` in every string (`$$` is a literal `$`), remembering each value."""
    if isinstance(value, dict):
        return {k: _expand(v, environ, secrets, path, root, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, secrets, path, root, (*loc, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in environ:
            raise ConfigError(f"{_where(path, root, loc)}: environment variable {name} is not set")
        secrets[name] = environ[name]
        return environ[name]

    return _VAR.sub(substitute, value)


def _check_importable(path: Path, scenario: Scenario) -> None:
    """Find the script's module without running it, so a typo fails `check`, not 3am."""
    assert scenario.script is not None
    top_level = scenario.script.partition(":")[0].split(".")[0]
    # The worker puts the scenario file's directory first on sys.path; look there too.
    search_path = [str(path.resolve().parent), *sys.path]
    try:
        found = (
            importlib.machinery.PathFinder.find_spec(top_level, search_path) is not None
            or importlib.util.find_spec(top_level) is not None
        )
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            f"{path}: scenario {scenario.name!r}: script: "
            f"module {top_level!r} cannot be found next to the scenario file or on the Python path"
        )


_FRIENDLY = {
    "extra_forbidden": "unknown field (check its spelling and indentation)",
    "missing": "required field is missing",
}


def _describe(path: Path, raw: Any, error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False):
        message = _FRIENDLY.get(item["type"]) or item["msg"].removeprefix("Value error, ")
        lines.append(f"{_where(path, raw, item['loc'])}: {message}")
    return "\n".join(lines)


def _where(path: Path, raw: Any, loc: tuple[str | int, ...]) -> str:
    """`file: scenario 'x': steps[1] (name).actions[0]` from a pydantic-style location."""
    parts: list[str] = [str(path)]
    node = raw
    field: list[str] = []
    for index, key in enumerate(loc):
        child = _child(node, key)
        if index == 1 and loc[0] == "scenarios" and isinstance(key, int):
            name = child.get("name") if isinstance(child, dict) else None
            parts.append(f"scenario {name!r}" if name else f"scenario #{key + 1}")
        elif isinstance(key, int):
            label = f"[{key}]"
            if isinstance(child, dict) and isinstance(child.get("name"), str):
                label += f" ({child['name']})"
            field.append(label)
        elif not (index == 0 and key == "scenarios" and len(loc) > 1):
            field.append(("." if field else "") + str(key))
        node = child
    if field:
        parts.append("".join(field))
    return ": ".join(parts)


def _child(node: Any, key: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None
