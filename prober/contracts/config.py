"""Scenario files: YAML -> `${VAR}` expansion -> validated models, or one clear ConfigError.

Every message names the file, the scenario and the field (or variable) at fault, because
the person reading it is an SRE looking at a crash-looping pod, not at a traceback.
"""

import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from prober.contracts.actions import FillTotp, Goto
from prober.contracts.durations import Duration, at_most
from prober.contracts.result import DEFAULT_COMPONENT
from prober.contracts.scriptcheck import script_problems
from prober.contracts.secrets import Redactor, is_short
from prober.contracts.slo import SLO
from prober.contracts.steps import COMPONENT_NAME, Step
from prober.contracts.tracecontext import check_propagation_host
from prober.contracts.yamlload import YamlLoadError, load_yaml_file

SCENARIO_NAME = r"^[a-z0-9_-]+$"
_SCRIPT_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# `${NAME}` or `${env:NAME}` (secret), `${public:NAME}` (not secret), `${file:PATH}`
# (secret, the file's content), or `$$` for a literal `$`.
_VAR = re.compile(
    r"\$\{(?:(env|public):([A-Za-z_][A-Za-z0-9_]*)|file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*))\}"
    r"|\$\$"
)
# A credential is a line or a key, not a file someone mounted by mistake.
MAX_SECRET_FILE_BYTES = 64 * 1024
# A file with thousands of faults gets the first few and a count, not a screenful each.
MAX_LISTED = 10
MAX_LINE = 300
MAX_INTERVAL = 30 * 86400.0
MAX_TIMEOUT = 3600.0


class ConfigError(Exception):
    """A scenario file that cannot be used; the message is meant for humans as-is."""


class Scenario(BaseModel):
    """One user flow, run every `interval` after the previous run ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SCENARIO_NAME, max_length=63)
    interval: Annotated[Duration, at_most(MAX_INTERVAL)] = Field(gt=0)
    timeout: Annotated[Duration, at_most(MAX_TIMEOUT)] = Field(gt=0)
    steps: list[Step] | None = Field(default=None, min_length=1)
    script: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    # Extra attempts after a failed or timed-out run (policy: prober/schedule/retries.py).
    # Strict: YAML reads `yes`/`on` as true, and true must not become one retry.
    retries: int = Field(default=0, ge=0, le=10, strict=True)
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
    """A loaded scenario file, the secrets its expansion brought in, and the files they
    were read from (`${file:...}`), which live reload watches as well."""

    path: Path
    scenarios: tuple[Scenario, ...]
    secrets: tuple[str, ...]
    files: tuple[Path, ...] = ()
    # Variables whose values are too short to mask in free text (prober.contracts.secrets).
    short_secret_variables: tuple[str, ...] = ()

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        known = ", ".join(s.name for s in self.scenarios)
        raise ConfigError(f"{self.path}: no scenario named '{name}'; scenarios: {known}")


def load_config(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    *,
    read_files: bool = True,
    scripts_of: Collection[str] | None = None,
) -> Config:
    """Read, expand and validate a scenario file; raise ConfigError with a human message.

    `read_files=False` leaves `${file:...}` references as written: `prober rules` runs in
    CI, where the mounted Secrets do not exist and their values do not matter.
    `scripts_of` limits the import check of Python scenarios (a child Python that imports
    each script, ~0.5 CPU-s) to the scenarios of those names: `prober run NAME` runs one
    scenario and has no use for checking the others' scripts (`prober check` does that).
    """
    path = Path(path)
    try:
        return _load(path, os.environ if environ is None else environ, read_files, scripts_of)
    except ConfigError:
        raise
    except Exception as exc:  # a bug of ours: still one line, and no value quoted
        raise ConfigError(
            f"{path}: cannot load scenario file (unexpected {type(exc).__name__})"
        ) from None


def _load(
    path: Path, environ: Mapping[str, str], read_files: bool, scripts_of: Collection[str] | None
) -> Config:
    try:
        raw = load_yaml_file(path)
    except YamlLoadError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'scenarios' list at the top")
    expansion = _Expansion(path, raw, environ, read_files=read_files)
    expanded = expansion.expand(raw, ())
    secrets = expansion.secrets  # where it came from (a variable, a file) -> value
    # Messages quote offending values, which may have come from the environment.
    redact = Redactor(secrets.values())
    if expansion.problems:
        raise _report(expansion.problems, redact)
    try:
        parsed = ScenarioFile.model_validate(expanded)
    except ValidationError as exc:
        raise _report(_describe(path, raw, exc), redact) from None
    # A TOTP seed is a credential even when written into the file literally.
    for scenario in parsed.scenarios:
        for step in scenario.steps or ():
            for action in step.actions:
                if isinstance(action, FillTotp):
                    for index, seed in enumerate(action.secrets()):
                        secrets[f"fill_totp seed of {scenario.name}/{step.name} ({index})"] = seed
    scripts = [
        s
        for s in parsed.scenarios
        if s.script is not None and (scripts_of is None or s.name in scripts_of)
    ]
    # Where the worker will look first: the directory the file was given in (a
    # ConfigMap's stable mount, not the timestamped directory behind its symlink).
    found = script_problems([s.script for s in scripts if s.script], [str(path.absolute().parent)])
    problems = [
        f"{path}: scenario '{s.name}': script: {found[s.script]}"
        for s in scripts
        if s.script in found
    ]
    if problems:
        raise _report(problems, Redactor(secrets.values()))
    return Config(
        path=path,
        scenarios=tuple(parsed.scenarios),
        secrets=tuple(sorted(set(secrets.values()))),
        files=tuple(expansion.files),
        short_secret_variables=tuple(sorted(n for n, v in secrets.items() if v and is_short(v))),
    )


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


class _Expansion:
    """Replaces `${...}` in every string of the file, remembering secrets, files read and
    every problem (a file with thousands gets the first few and a count)."""

    def __init__(
        self, path: Path, root: Any, environ: Mapping[str, str], *, read_files: bool
    ) -> None:
        self.path = path
        self.root = root
        self.environ = environ
        self.read_files = read_files
        self.secrets: dict[str, str] = {}
        self.files: list[Path] = []
        self.problems: list[str] = []

    def expand(self, value: Any, loc: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {k: self.expand(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, (*loc, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        if "$" in value and any(_matches(loc, shape) for shape in _LITERAL):
            self.problems.append(
                f"{_where(self.path, self.root, loc)}: names are metric labels and must be "
                "written out, not taken from ${VAR}"
            )
            return value
        return _VAR.sub(lambda match: self._substitute(match, loc), value)

    def _substitute(self, match: re.Match[str], loc: tuple[str | int, ...]) -> str:
        kind, prefixed, file, bare = match.groups()
        if match.group(0) == "$$":
            return "$"
        if file is not None and not self.read_files:
            return match.group(0)
        if file is not None:
            try:
                value = self._read_file(file.strip(), loc)
            except ConfigError as exc:
                self.problems.append(str(exc))
                return ""
            self.secrets[f"file:{file.strip()}"] = value
            return value
        name = prefixed or bare
        if name not in self.environ:
            self.problems.append(
                f"{_where(self.path, self.root, loc)}: environment variable {name} is not set"
            )
            return ""
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
        names = (
            [m.group(0) for m in _VAR.finditer(written) if m.group(0) != "$$"]
            if isinstance(written, str)
            else []
        )
        if names:
            # Name the variables, never the value they brought in.
            message += f" (the value of {', '.join(names)})"
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
