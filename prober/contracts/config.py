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

from prober.contracts.actions import Action, FillTotp, Goto, normalize_action
from prober.contracts.durations import Duration
from prober.contracts.result import DEFAULT_COMPONENT
from prober.contracts.secrets import Redactor, is_short
from prober.contracts.slo import SLO
from prober.contracts.tracecontext import check_propagation_host

SCENARIO_NAME = r"^[a-z0-9_-]+$"
STEP_NAME = r"^[a-z0-9_]+$"
# The `component` label (the part of the flow a step exercises: app, idp, cdn...).
COMPONENT_NAME = r"^[a-z0-9_]+$"
_SCRIPT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# `${NAME}` or `${env:NAME}` (secret), `${public:NAME}` (not secret), `${file:PATH}`
# (secret, the file's content), or `$$` for a literal `$`.
_VAR = re.compile(
    r"\$\{(?:(env|public):([A-Za-z_][A-Za-z0-9_]*)|file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*))\}"
    r"|\$\$"
)
# A credential is a line or a key, not a file someone mounted by mistake.
MAX_SECRET_FILE_BYTES = 64 * 1024


class ConfigError(Exception):
    """A scenario file that cannot be used; the message is meant for humans as-is."""


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=STEP_NAME)
    actions: list[Annotated[Action, BeforeValidator(normalize_action)]] = Field(min_length=1)
    # Only `prober rules` reads it; excluded from the worker's spec, which re-validates steps.
    slo: SLO | None = Field(default=None, exclude=True)
    # None: the scenario's own component.
    component: str | None = Field(default=None, pattern=COMPONENT_NAME, max_length=63)


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
    # Objectives for `prober rules` (prober/slo/); steps of the declarative form may have own.
    slo: SLO | None = None
    # The component of every step that names none, and of the run's time outside steps.
    component: str = Field(default=DEFAULT_COMPONENT, pattern=COMPONENT_NAME, max_length=63)
    # Hosts besides those of the `goto` URLs whose requests carry `traceparent` (the
    # scenario's own APIs on other hosts); see prober/contracts/tracecontext.py.
    trace_propagation_hosts: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("trace_propagation_hosts")
    @classmethod
    def _propagation_hosts(cls, hosts: list[str]) -> list[str]:
        return [check_propagation_host(host) for host in hosts]

    @property
    def goto_urls(self) -> list[str]:
        """The URLs its declarative steps navigate to: its own origins."""
        return [
            action.url
            for step in self.steps or ()
            for action in step.actions
            if isinstance(action, Goto)
        ]

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
    """A loaded scenario file, the secrets its expansion brought in, and the files they
    were read from (`${file:...}`), which live reload watches as well."""

    path: Path
    scenarios: tuple[Scenario, ...]
    secrets: tuple[str, ...]
    files: tuple[Path, ...] = ()
    # Variables whose values are too short to mask in free text (prober.secrets).
    short_secret_variables: tuple[str, ...] = ()

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        known = ", ".join(s.name for s in self.scenarios)
        raise ConfigError(f"{self.path}: no scenario named {name!r}; scenarios: {known}")


def load_config(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    *,
    read_files: bool = True,
) -> Config:
    """Read, expand and validate a scenario file; raise ConfigError with a human message.

    `read_files=False` leaves `${file:...}` references as written: `prober rules` runs in
    CI, where the mounted Secrets do not exist and their values do not matter."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    raw = _read_yaml(path)
    expansion = _Expansion(path, raw, environ, read_files=read_files)
    expanded = expansion.expand(raw, ())
    secrets = expansion.secrets  # where it came from (a variable, a file) -> value
    # Messages quote offending values, which may have come from the environment.
    redact = Redactor(secrets.values())
    try:
        parsed = ScenarioFile.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(redact(_describe(path, raw, exc))) from None
    # A TOTP seed is a credential even when written into the file literally.
    for scenario in parsed.scenarios:
        for step in scenario.steps or ():
            for action in step.actions:
                if isinstance(action, FillTotp):
                    for index, seed in enumerate(action.secrets()):
                        secrets[f"fill_totp seed of {scenario.name}/{step.name} ({index})"] = seed
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
        files=tuple(expansion.files),
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


class _Expansion:
    """Replaces `${...}` in every string of the file, remembering secrets and files read."""

    def __init__(
        self, path: Path, root: Any, environ: Mapping[str, str], *, read_files: bool
    ) -> None:
        self.path = path
        self.root = root
        self.environ = environ
        self.read_files = read_files
        self.secrets: dict[str, str] = {}
        self.files: list[Path] = []

    def expand(self, value: Any, loc: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {k: self.expand(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, (*loc, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        return _VAR.sub(lambda match: self._substitute(match, loc), value)

    def _substitute(self, match: re.Match[str], loc: tuple[str | int, ...]) -> str:
        kind, prefixed, file, bare = match.groups()
        if match.group(0) == "$$":
            return "$"
        if file is not None and not self.read_files:
            return match.group(0)
        if file is not None:
            value = self._read_file(file.strip(), loc)
            self.secrets[f"file:{file.strip()}"] = value
            return value
        name = prefixed or bare
        if name not in self.environ:
            raise ConfigError(
                f"{_where(self.path, self.root, loc)}: environment variable {name} is not set"
            )
        value = self.environ[name]
        if kind != "public":  # a credential unless the file says it is not
            self.secrets[name] = value
        return value

    def _read_file(self, name: str, loc: tuple[str | int, ...]) -> str:
        """A mounted Secret's key: the content, less the line ending an editor adds."""
        where = _where(self.path, self.root, loc)
        file = Path(name)
        if not file.is_absolute():
            file = self.path.parent / file
        try:
            with file.open("rb") as handle:
                data = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ConfigError(f"{where}: secret file {file} cannot be read: {why}") from None
        if len(data) > MAX_SECRET_FILE_BYTES:
            raise ConfigError(
                f"{where}: secret file {file} is larger than {MAX_SECRET_FILE_BYTES} bytes"
            )
        try:
            value = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: secret file {file} is not UTF-8 text") from None
        if not value:
            raise ConfigError(f"{where}: secret file {file} is empty")
        if file not in self.files:
            self.files.append(file)
        return value


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
