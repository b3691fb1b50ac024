"""Checking that Python scenarios' `module:function` import, without importing them here.

`prober check` runs in CI before a deploy; a script with a syntax error, an import
that raises, a misspelt function or a module-level name that is not a function must
fail there, not at the first scheduled run. Importing runs the module's top-level code,
which may hang, print, or import Playwright (which the parent never does), so the
imports happen in a child Python with the worker's search path, killed after
IMPORT_SECONDS.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

IMPORT_SECONDS = 5.0

# The child: import each reference in turn, say which one it is on before starting (so
# a hang can be named), and answer on the original stdout while the modules' own
# output goes nowhere.
_CHILD = r"""
import importlib, inspect, json, os, sys
answer = os.fdopen(os.dup(1), "w")
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 1)
os.dup2(null, 2)
refs, path = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for entry in reversed(path):
    sys.path.insert(0, entry)

def first_line(exc):
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__

def problem(ref):
    module_name, _, function_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if missing == module_name.split(".")[0]:
            return (f"module '{missing}' cannot be found next to the scenario file "
                    "or on the Python path")
        if module_name == missing or module_name.startswith(missing + "."):
            return f"module '{missing}' cannot be found"
        return f"module '{module_name}' does not import: {first_line(exc)}"
    except SyntaxError as exc:
        where = f" ({os.path.basename(exc.filename or '?')}, line {exc.lineno})"
        return f"module '{module_name}' has a syntax error{where}: {exc.msg}"
    except BaseException as exc:
        return f"module '{module_name}' raises on import: {first_line(exc)}"
    function = getattr(module, function_name, None)
    if function is None:
        return f"module '{module_name}' has no function '{function_name}'"
    if not callable(function):
        return f"'{ref}' is a {type(function).__name__}, not a function"
    if not (inspect.iscoroutinefunction(function)
            or inspect.iscoroutinefunction(getattr(function, "__call__", None))):
        return f"'{ref}' must be an async function: async def {function_name}(page, step, params)"
    return None

for ref in refs:
    answer.write(json.dumps({"ref": ref}) + "\n")
    answer.flush()
    answer.write(json.dumps({"ref": ref, "problem": problem(ref)}) + "\n")
    answer.flush()
"""


def script_problems(
    refs: Sequence[str], python_path: Sequence[str], timeout: float = IMPORT_SECONDS
) -> dict[str, str]:
    """Import each `module:function` in a child process; what is wrong with each, by ref."""
    if not refs:
        return {}
    env = {k: v for k, v in os.environ.items() if k != "PROBER_API_TOKEN"}
    unique = list(dict.fromkeys(refs))
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(unique), json.dumps(list(python_path))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # so a module that spawns cannot outlive the check
    ) as child:
        try:
            output, _ = child.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # The whole session: a module may have started processes of its own.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        if timed_out:
            try:
                output, _ = child.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # a process of its own kept the pipe open
                output = b""
    problems: dict[str, str] = {}
    answered: set[str] = set()
    started: str | None = None
    for line in output.decode("utf-8", "replace").splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "problem" in message:
            answered.add(message["ref"])
            if message["problem"]:
                problems[message["ref"]] = message["problem"]
        else:
            started = message["ref"]
    unanswered = [ref for ref in unique if ref not in answered]
    hung = started if started in unanswered else next(iter(unanswered), None)
    for ref in unanswered:
        module = ref.partition(":")[0]
        if timed_out and ref == hung:
            problems[ref] = f"importing module '{module}' did not finish within {timeout:g}s"
        elif timed_out:
            problems[ref] = (
                f"not checked: an earlier script's import did not finish in {timeout:g}s"
            )
        else:
            problems[ref] = f"importing module '{module}' ended the Python process that imported it"
    return problems
