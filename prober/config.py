"""Scenario files: YAML -> `${VAR}` expansion -> validated models, or one clear ConfigError.

Every message names the file, the scenario and the field (or variable) at fault, because
the person reading it is an SRE looking at a crash-looping pod, not at a traceback.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from prober.durations import Duration, at_most
from prober.scenario.actions import Action, normalize_action
from prober.scriptcheck import script_problems
from prober.secrets import Redactor
from prober.yamlload import YamlLoadError, load_yaml_file

SCENARIO_NAME = r"^[a-z0-9_-]+$"
STEP_NAME = r"^[a-z0-9_]+$"
_SCRIPT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")
# A file with thousands of faults gets the first few and a count, not a screenful each.
MAX_LISTED = 10
MAX_LINE = 300
MAX_INTERVAL = 30 * 86400.0
MAX_TIMEOUT = 3600.0


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
    interval: Annotated[Duration, at_most(MAX_INTERVAL)] = Field(gt=0)
    timeout: Annotated[Duration, at_most(MAX_TIMEOUT)] = Field(gt=0)
    steps: list[Step] | None = Field(default=None, min_length=1)
    script: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    # Extra attempts after a failed or timed-out run (see prober/retries.py for the policy).
    # Strict: YAML reads `yes`/`on` as true, and true must not become one retry.
    retries: int = Field(default=0, ge=0, le=10, strict=True)

    @field_validator("script")
    @classmethod
    def _script_reference(cls, value: str | None) -> str | None:
        if value is not None and not _SCRIPT_REF.match(value):
            raise ValueError(f"script '{value}' must look like 'package.module:function'")
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

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        known = ", ".join(s.name for s in self.scenarios)
        raise ConfigError(f"{self.path}: no scenario named '{name}'; scenarios: {known}")


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a scenario file; raise ConfigError with a human message."""
    path = Path(path)
    try:
        return _load(path, os.environ if environ is None else environ)
    except ConfigError:
        raise
    except Exception as exc:  # a bug of ours: still one line, and no value quoted
        raise ConfigError(
            f"{path}: cannot load scenario file (unexpected {type(exc).__name__})"
        ) from None


def _load(path: Path, environ: Mapping[str, str]) -> Config:
    try:
        raw = load_yaml_file(path)
    except YamlLoadError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'scenarios' list at the top")
    secrets: set[str] = set()
    problems: list[str] = []
    expanded = _expand(raw, environ, secrets, problems, path, raw, ())
    # Messages quote offending values, which may have come from the environment.
    redact = Redactor(secrets)
    if problems:
        raise _report(problems, redact)
    try:
        parsed = ScenarioFile.model_validate(expanded)
    except ValidationError as exc:
        raise _report(_describe(path, raw, exc), redact) from None
    scripts = [s for s in parsed.scenarios if s.script is not None]
    # Where the worker will look first: the directory the file was given in (a
    # ConfigMap's stable mount, not the timestamped directory behind its symlink).
    found = script_problems([s.script for s in scripts if s.script], [str(path.absolute().parent)])
    problems = [
        f"{path}: scenario '{s.name}': script: {found[s.script]}"
        for s in scripts
        if s.script in found
    ]
    if problems:
        raise _report(problems, redact)
    return Config(path=path, scenarios=tuple(parsed.scenarios), secrets=tuple(sorted(secrets)))


def _report(problems: list[str], redact: Redactor) -> ConfigError:
    """The first few problems, masked, one line each, then how many more there are.

    Masked before anything is escaped or cut: an escaped or truncated secret would no
    longer match its mask.
    """
    lines = [_one_line(redact(problem)) for problem in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f"... and {len(problems) - MAX_LISTED:,} more")
    return ConfigError("\n".join(lines))


def _one_line(text: str) -> str:
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


# Names become metric labels, API paths and status-page text: never from the environment.
_LITERAL = (("scenarios", int, "name"), ("scenarios", int, "steps", int, "name"))


def _expand(
    value: Any,
    environ: Mapping[str, str],
    secrets: set[str],
    problems: list[str],
    path: Path,
    root: Any,
    loc: tuple[str | int, ...],
) -> Any:
    """Replace `${VAR}` in every string (`$$` is a literal `$`), remembering each value."""
    if isinstance(value, dict):
        return {
            k: _expand(v, environ, secrets, problems, path, root, (*loc, k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _expand(v, environ, secrets, problems, path, root, (*loc, i))
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str):
        return value
    if "$" in value and any(_matches(loc, shape) for shape in _LITERAL):
        problems.append(
            f"{_where(path, root, loc)}: names are metric labels and must be written out, "
            "not taken from ${VAR}"
        )
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in environ:
            problems.append(f"{_where(path, root, loc)}: environment variable {name} is not set")
            return ""
        secrets.add(environ[name])
        return environ[name]

    return _VAR.sub(substitute, value)


def _matches(loc: tuple[str | int, ...], shape: tuple[str | type, ...]) -> bool:
    return len(loc) == len(shape) and all(
        isinstance(part, want) if isinstance(want, type) else part == want
        for part, want in zip(loc, shape, strict=True)
    )


_FRIENDLY = {
    "extra_forbidden": "unknown field (check its spelling and indentation)",
    "missing": "required field is missing",
}


def _describe(path: Path, raw: Any, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        message = _FRIENDLY.get(item["type"]) or item["msg"].removeprefix("Value error, ")
        written = _written(raw, item["loc"])
        names = _VAR.findall(written) if isinstance(written, str) else []
        if any(names):
            # Name the variables, never the value they brought in.
            message += f" (the value of {', '.join('${' + n + '}' for n in names if n)})"
        elif isinstance(written, str) and written not in message:
            # As written in the file (no ${VAR} in it), so safe to shorten.
            shown = written if len(written) <= 60 else written[:59] + "…"
            message += f" (got '{shown}')"
        elif isinstance(written, bool):
            message += f" (got {str(written).lower()}: YAML reads yes/no/on/off as booleans)"
        lines.append(f"{_where(path, raw, item['loc'])}: {message}")
    return lines


def _written(raw: Any, loc: tuple[str | int, ...]) -> Any:
    """The value as written in the file at `loc` (a shorthand action's string, too)."""
    node = raw
    for key in loc:
        if isinstance(node, str):
            return node  # `goto: "..."`: pydantic's loc goes on into the tagged form
        node = _child(node, key)
    return node


def _where(path: Path, raw: Any, loc: tuple[str | int, ...]) -> str:
    """`file: scenario 'x': steps[1] (name).actions[0]` from a pydantic-style location."""
    parts: list[str] = [str(path)]
    node = raw
    field: list[str] = []
    for index, key in enumerate(loc):
        child = _child(node, key)
        if index == 1 and loc[0] == "scenarios" and isinstance(key, int):
            name = child.get("name") if isinstance(child, dict) else None
            parts.append(f"scenario '{name}'" if isinstance(name, str) else f"scenario #{key + 1}")
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
