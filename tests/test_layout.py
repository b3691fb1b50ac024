"""The import rules of the layout (docs/architecture.md), checked in fresh interpreters.

- The parent (cli, service, settings, logs, contracts, supervise, schedule, record, http)
  never imports Playwright: `prober check` and `prober serve` must not pay for it, and
  a parent that imports it is one refactoring away from driving a page itself.
- The worker side imports the contracts and the script API, never the parent's packages,
  nor the scenario file's loading (prober.contracts.config, YAML): ~0.05 CPU-s a worker.
- `prober run` and `prober check` do not load the serving side (aiohttp, prometheus-client,
  prober.service, prober.http, the metrics and the history): prober.cli imports it in
  `serve` and `demo` only, because a one-shot run paid ~0.25 CPU-s for it (bench/ B10).
- The contracts import no other prober package and none of the process-specific
  libraries (Playwright, aiohttp, prometheus-client).
"""

import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import prober

PARENT_PACKAGES = ("contracts", "supervise", "schedule", "record", "http", "slo")
PARENT_MODULES = ("cli", "service", "settings", "logs", "early")
WORKER_PACKAGES = ("worker", "scenario")


def modules(*packages: str) -> list[str]:
    """Every module of these prober subpackages, found on disk (a new one is checked too)."""
    found = []
    for package in packages:
        found.append(f"prober.{package}")
        path = [str(Path(prober.__file__).parent / package)]
        for info in pkgutil.walk_packages(path, prefix=f"prober.{package}."):
            if not info.name.endswith(".__main__"):  # running it would start a worker
                found.append(info.name)
    return found


def loaded_after(code: str) -> list[str]:
    """The top-level package names in sys.modules after running `code` in a new interpreter."""
    script = code + textwrap.dedent("""
        import json, sys
        print(json.dumps(sorted(sys.modules)))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def imports(names: list[str]) -> str:
    return "import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)


def test_the_module_lists_are_complete() -> None:
    # A package missing from both lists would escape every rule below.
    on_disk = {
        info.name
        for info in pkgutil.iter_modules([str(Path(prober.__file__).parent)])
        if info.name != "__main__"
    }
    listed = {*PARENT_PACKAGES, *PARENT_MODULES, *WORKER_PACKAGES, "demo"}
    assert on_disk == listed
    assert "prober.supervise.runner" in modules("supervise")


def test_parent_modules_do_not_import_playwright() -> None:
    names = modules(*PARENT_PACKAGES) + [f"prober.{m}" for m in PARENT_MODULES]
    loaded = loaded_after(imports(names))
    assert "prober.supervise.runner" in loaded and "prober.http.api" in loaded
    assert not [m for m in loaded if m.split(".")[0] == "playwright"]
    assert not [m for m in loaded if m.startswith(("prober.worker", "prober.scenario"))]


def test_prober_check_does_not_load_playwright(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        textwrap.dedent("""\
            scenarios:
              - name: home
                interval: 1m
                timeout: 10s
                steps:
                  - name: loaded
                    actions:
                      - goto: https://example.invalid/
        """)
    )
    loaded = loaded_after(
        f"from prober.cli import main\nassert main(['check', '--config', {str(path)!r}]) == 0\n"
    )
    assert "prober.contracts.config" in loaded
    assert not [m for m in loaded if m.split(".")[0] == "playwright"]


SERVING = (
    "aiohttp",
    "prometheus_client",
    "prober.service",
    "prober.http",
    "prober.record.metrics",
    "prober.record.history",
)


def serving_modules(loaded: list[str]) -> list[str]:
    return [m for m in loaded if m in SERVING or m.startswith(tuple(f"{s}." for s in SERVING))]


def test_prober_run_does_not_load_the_serving_side(tmp_path: Path) -> None:
    (tmp_path / "noop_mod.py").write_text("async def run(page, step, params):\n    pass\n")
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        "scenarios:\n  - {name: noop, interval: 1m, timeout: 30s, script: 'noop_mod:run'}\n"
    )
    loaded = loaded_after(
        "from prober.cli import main\n"
        f"assert main(['run', '--config', {str(path)!r}, 'noop']) == 0\n"
    )
    assert "prober.supervise.runner" in loaded and "prober.contracts.config" in loaded
    assert serving_modules(loaded) == []
    assert not [m for m in loaded if m.split(".")[0] == "playwright"]


def test_prober_serve_still_loads_what_it_serves_with() -> None:
    # The check above must be able to fail: these are the modules it looks for.
    loaded = loaded_after("import prober.cli, prober.service\n")
    assert {"aiohttp", "prometheus_client", "prober.http.server"} <= set(loaded)
    assert "prober.service" not in loaded_after("import prober.cli\n")


def test_worker_side_does_not_import_the_parent() -> None:
    loaded = loaded_after(imports(modules(*WORKER_PACKAGES)))
    assert "prober.worker.main" in loaded and "playwright" in loaded
    parent = tuple(f"prober.{p}" for p in (*PARENT_PACKAGES[1:], *PARENT_MODULES))
    assert not [m for m in loaded if m.startswith(parent)]
    assert not [m for m in loaded if m.split(".")[0] in ("aiohttp", "prometheus_client")]
    # Steps come from prober.contracts.steps: scenario files are the parent's business.
    assert "prober.contracts.config" not in loaded and "yaml" not in loaded


def test_contracts_import_nothing_process_specific() -> None:
    loaded = loaded_after(imports(modules("contracts")))
    others = [m for m in loaded if m.startswith("prober.") and not m.startswith("prober.contracts")]
    assert others == []
    assert not [
        m for m in loaded if m.split(".")[0] in ("playwright", "aiohttp", "prometheus_client")
    ]


def test_a_worker_imports_the_prober_the_parent_runs() -> None:
    """The worker's PYTHONPATH starts at the directory holding this very `prober` package.

    One level off and it would hold prober/ itself, where `http` is prober.http, not the
    standard library's.
    """
    from prober.supervise.processes import _environment

    first = _environment("tag", "/tmp")["PYTHONPATH"].split(os.pathsep)[0]
    assert Path(first) / "prober" == Path(prober.__file__).resolve().parent
