"""Every query of the dashboard and every rule, against a real Prometheus scraping real
`prober serve` replicas that run real scenarios in Chromium against a local target.

Two replicas (pods prober-a and prober-b, relabelled exactly as
deploy/prometheus/scrape-config.yaml does in Kubernetes) run scenarios chosen so that
every alert expression has something to find:
- sign-in succeeds on prober-a and fails on prober-b   -> ProberReplicaFailing
- broken fails at its second step on both               -> ProberTargetDown, failures
- slow takes over half its timeout (on prober-a)        -> ProberScenarioSlow
  (its timeout also covers worker start-up and browser launch, 5-10 s on a loaded
  2-core machine, so the page takes 15.5 of 30 s; prober-b, whose runs all fail fast,
  runs one browser at a time to leave CPU for the rest)
- bad-import's script cannot be imported (prober-b)     -> ProberRunErrors, ProberStale
- a third target that nothing listens on                -> ProberScrapeFailing
- a test-only SLO of 1 ms on one step                   -> ProberStepSlow
- sign-in declares objectives (availability, latency at an unusual 1.7 s, and a step's
  availability): `prober rules` output is loaded too; succeeding on one replica and
  failing on the other burns every budget, so ProberErrorBudgetBurn fires (every
  objective is 99% or more: half the runs bad is then over the fastest page threshold,
  14.4 x 1%; at 95% it would take 72%, reached only when a slow machine made
  prober-a's runs slow too), and its SLI
  must match the share counted from both replicas' own history (GET /api/runs)
ProberAbsent must find nothing (probers are up). Alerts have `for:` durations of
minutes, so the test checks each expression returns data and the alert is pending.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from prober.supervise import processes

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards/grafana.json"
RULES = ROOT / "deploy/prometheus/rules.yaml"
SCRAPE_CONFIG = ROOT / "deploy/prometheus/scrape-config.yaml"
NAMESPACE = "probes"

# What the dashboard's variables become in the test; windows fit a short test.
VARIABLES = {
    "location": "lab",
    "namespace": NAMESPACE,
    "pod": "prober-a|prober-b",
    "scenario": ".*",
    "component": "idp",
    "window": "30s",
    "__range": "60s",
    "__rate_interval": "10s",
    "__interval": "2s",
}

SITE = """
import asyncio, sys
from aiohttp import web
from prober.demo.site import make_app

async def slow(request):
    await asyncio.sleep(15.5)
    return web.Response(text="<h1>slow page</h1>", content_type="text/html")

app = make_app("probe-user", "demo-password")
app.router.add_get("/slow", slow)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            shutdown_timeout=0.5)  # do not wait for a /slow request at teardown
"""

SIGN_IN = """
  - name: sign-in
    interval: 3s
    timeout: 15s
    slo:
      objective: 99.5%
      latency: {{duration_under: 1700ms, objective: 99%}}
    steps:
      - name: app_page_loaded
        slo: {{objective: 99%}}
        actions:
          - goto: "{app}/"
          - wait_for: "text=Sign in with IdP"
      - name: idp_page_loaded
        component: idp
        actions:
          - click: "text=Sign in with IdP"
          - wait_for: "input[name=login]"
      - name: credentials_accepted
        component: idp
        actions:
          - fill: {{selector: "input[name=login]", value: "${{PROBE_USER}}"}}
          - fill: {{selector: "input[name=password]", value: "${{PROBE_PASSWORD}}"}}
          - click: "button[type=submit]"
      - name: back_in_app
        actions:
          - wait_for_url: "**/projects"
"""
BROKEN = """
  - name: broken
    interval: 3s
    timeout: 15s
    steps:
      - name: app_page_loaded
        actions:
          - goto: "{site}/"
      - name: api_reachable
        component: api
        actions:
          - goto: "{closed}/api"
"""
SLOW = """
  - name: slow
    interval: 1s
    timeout: 30s
    steps:
      - name: slow_page_loaded
        actions:
          - goto: "{site}/slow"
          - wait_for: "text=slow page"
"""
BAD_IMPORT = """
  - name: bad-import
    interval: 3s
    timeout: 15s
    script: "broken_probe:run"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def require(tool: str, install: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.fail(f"{tool} not found; install it with: {install}")
    return found


@dataclass
class Prometheus:
    url: str
    check_alive: Callable[[], None]
    # Every rule file Prometheus loaded, and each replica's base URL by pod name.
    rule_files: list[Path]
    replicas: dict[str, str]

    def query(self, expr: str) -> dict[str, Any]:
        status, body = http_get(
            f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        payload: dict[str, Any] = json.loads(body) if body else {"status": f"HTTP {status}"}
        return payload

    def value(self, expr: str) -> float:
        result = self.query(expr).get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else 0.0


def substitute(expr: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in VARIABLES, f"unknown dashboard variable ${name} in {expr}"
        return VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, expr)


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    board = json.loads(DASHBOARD.read_text())
    found = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"])
        for p in board["panels"]
        for t in p.get("targets", [])
    ]
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), *(\w+)\)", var["query"]["query"])
        assert m, var["query"]
        # What Grafana asks Prometheus for label_values(): the label on matching series.
        found.append((f"variable {var['name']}", f"count by ({m.group(2)}) ({m.group(1)})"))
    return found


def rule_queries(files: list[Path]) -> list[tuple[str, str]]:
    groups = [g for path in files for g in yaml.safe_load(path.read_text())["groups"]]
    return [(r.get("alert") or r["record"], r["expr"]) for g in groups for r in g["rules"]]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def reap_orphans() -> None:
    """pytest is a child subreaper (tests/conftest.py): reap what our children orphaned."""
    for _ in range(30):
        processes.reap_orphans(exclude=set())
        if not any(c.status() == psutil.STATUS_ZOMBIE for c in psutil.Process().children()):
            return
        time.sleep(0.1)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Prometheus]:
    """Target site, two prober replicas and Prometheus, all on 127.0.0.1."""
    prometheus_bin = require("prometheus", "apt-get install -y prometheus")
    require("chromium", "apt-get install -y chromium")
    started: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        log = tmp_path / f"{name}.log"
        logs.append(log)
        with log.open("wb") as out:
            started.append(
                subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=tmp_path,
                    env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                    start_new_session=True,
                )
            )

    def check_alive() -> None:
        for proc, log in zip(started, logs, strict=True):
            assert proc.poll() is None, f"{log.name} exited:\n{log.read_text()[-3000:]}"

    try:
        site_port, closed_port = free_port(), free_port()
        site, closed = f"http://127.0.0.1:{site_port}", f"http://127.0.0.1:{closed_port}"
        spawn("site", [sys.executable, "-c", SITE, str(site_port)])

        urls = {"site": site, "closed": closed}
        replicas = {
            "prober-a": SIGN_IN.format(app=site) + BROKEN.format(**urls) + SLOW.format(**urls),
            "prober-b": SIGN_IN.format(app=closed) + BROKEN.format(**urls) + BAD_IMPORT,
        }
        concurrency = {"prober-a": "2", "prober-b": "1"}
        ports = {}
        for pod, scenarios in replicas.items():
            conf = tmp_path / pod
            conf.mkdir()
            (conf / "scenarios.yaml").write_text("scenarios:" + scenarios)
            # Importable by `prober check` (which serve's load runs), broken in the worker:
            # a dependency missing where the runs happen.
            (conf / "broken_probe.py").write_text(
                "import sys\n\n"
                "if 'playwright' in sys.modules:  # the worker has it, check does not\n"
                "    import module_that_does_not_exist\n\n"
                "async def run(page, step, params): ...\n"
            )
            ports[pod] = free_port()
            spawn(
                pod,
                [
                    sys.executable,
                    "-m",
                    "prober",
                    "serve",
                    "--config",
                    str(conf / "scenarios.yaml"),
                    "--listen",
                    f"127.0.0.1:{ports[pod]}",
                ],
                {
                    "PROBE_USER": "probe-user",
                    "PROBE_PASSWORD": "demo-password",
                    "PROBER_MAX_START_OFFSET": "0s",
                    "PROBER_LOCATION": "lab",
                    "PROBER_GRACE_PERIOD": "2s",
                    "PROBER_MAX_CONCURRENCY": concurrency[pod],
                    "PROBER_LOG_FORMAT": "text",
                    "PROBER_LOG_LEVEL": "INFO",
                    # `prober check` looks for script modules on sys.path only, while the
                    # worker also adds the scenario file's directory: add it for both.
                    "PYTHONPATH": f"{ROOT}{os.pathsep}{conf}",
                },
            )
        ports["prober-gone"] = closed_port

        # The shipped scrape config, with its Kubernetes discovery replaced by static
        # targets that carry the same __meta_ labels, so its relabelling runs for real.
        shipped = yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"][0]
        job = {k: v for k, v in shipped.items() if k != "kubernetes_sd_configs"}
        job.update(scrape_interval="1s", scrape_timeout="1s")
        job["static_configs"] = [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {
                    "__meta_kubernetes_pod_label_app_kubernetes_io_name": "prober",
                    "__meta_kubernetes_pod_container_port_name": "metrics",
                    "__meta_kubernetes_pod_phase": "Running",
                    "__meta_kubernetes_namespace": NAMESPACE,
                    "__meta_kubernetes_pod_name": pod,
                    "__meta_kubernetes_pod_node_name": "node-1",
                },
            }
            for pod, port in ports.items()
        ]
        slo = tmp_path / "slo.yaml"
        slo.write_text(
            textwrap.dedent("""\
            groups:
              - name: test-slo
                rules:
                  - record: prober:step_p95_slo_seconds
                    expr: vector(0.001)
                    labels: {scenario: sign-in, step: app_page_loaded}
            """)
        )
        # The SLO rules exactly as users get them (sign-in's objectives are the same on
        # both replicas; prober-a's file has them).
        conf_a = tmp_path / "prober-a" / "scenarios.yaml"
        generated = subprocess.run(
            [sys.executable, "-m", "prober", "rules", "--config", str(conf_a)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert generated.returncode == 0, generated.stderr
        slo_rules = tmp_path / "slo-rules.yaml"
        slo_rules.write_text(generated.stdout)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES), str(slo), str(slo_rules)],
                    "scrape_configs": [job],
                }
            )
        )
        prom_port = free_port()
        spawn(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
        )
        prom = Prometheus(
            f"http://127.0.0.1:{prom_port}",
            check_alive,
            [RULES, slo_rules],
            {pod: f"http://127.0.0.1:{ports[pod]}" for pod in replicas},
        )
        deadline = time.monotonic() + 20
        while http_get(f"{prom.url}/-/ready")[0] != 200:
            assert time.monotonic() < deadline, "Prometheus did not become ready"
            check_alive()
            time.sleep(0.2)
        yield prom
    finally:
        for proc in reversed(started):
            stop(proc)
        reap_orphans()


def wait_for_data(prom: Prometheus) -> None:
    """Until every kind of series exists and windows hold a few runs (bounded)."""
    conditions = {
        "sign-in successes": 'sum(prober_scenario_runs_total{scenario="sign-in",'
        'result="success"}) >= 2',
        "sign-in failures on prober-b": 'sum(prober_scenario_runs_total{scenario="sign-in",'
        'pod="prober-b",result="failure"}) >= 2',
        "slow successes": 'sum(prober_scenario_runs_total{scenario="slow",result="success"}) >= 2',
        "broken failures": 'sum(prober_step_failures_total{scenario="broken"}) >= 3',
        "bad-import errors": 'sum(prober_scenario_runs_total{scenario="bad-import",'
        'result="error"}) >= 2',
        "gone target down": 'count(up{pod="prober-gone"} == 0) >= 1',
        "alerts pending": 'count(ALERTS{alertstate="pending"}) >= 1',
        "error budget burning": 'count(ALERTS{alertname="ProberErrorBudgetBurn",'
        'alertstate="firing"}) >= 1',
    }
    deadline = time.monotonic() + 80
    missing = list(conditions)
    while time.monotonic() < deadline:
        prom.check_alive()
        missing = [k for k, expr in conditions.items() if prom.value(expr) == 0]
        if not missing:
            time.sleep(3)  # a few more scrapes into the 30s windows
            return
        time.sleep(1)
    runs = prom.query("sum by (pod, scenario, result) (prober_scenario_runs_total) > 0")
    seen = sorted(
        (r["metric"].get("pod"), r["metric"]["scenario"], r["metric"]["result"], r["value"][1])
        for r in runs.get("data", {}).get("result", [])
    )
    pytest.fail(f"not seen within 80s: {missing}; runs so far: {seen}")


def test_every_dashboard_and_rule_query_returns_data(stack: Prometheus) -> None:
    wait_for_data(stack)
    problems = []
    for where, expr in dashboard_queries():
        resolved = substitute(expr)
        answer = stack.query(resolved)
        if answer.get("status") != "success":
            problems.append(f"{where}: {answer.get('error', answer)}\n  {resolved}")
        elif not answer["data"]["result"]:
            problems.append(f"{where}: no data\n  {resolved}")

    expect_empty = {"ProberAbsent"}  # every prober is up
    # Healthy probers: these alerts' conditions are false, but the metric they read must
    # be there (promtool tests cover them firing).
    healthy = {
        "ProberConfigReloadFailed": "prober_config_last_reload_successful",
        "ProberHistoryDegraded": "prober_history_degraded",
        "ProberBrowserCrashing": "prober_slot_recycles_total",
    }
    expect_empty |= healthy.keys()
    # The stack's targets are plain HTTP: no certificate to expire. The expressions must
    # still evaluate; promtool tests cover them firing, tests/worker/test_tls.py the metric.
    expect_empty |= {"ProberCertificateExpiringSoon", "ProberCertificateExpiring"}
    for name, metric in healthy.items():
        if not stack.query(metric).get("data", {}).get("result"):
            problems.append(f"rule {name}: metric {metric} is not exported")
    for name, expr in rule_queries(stack.rule_files):
        answer = stack.query(expr)
        if answer.get("status") != "success":
            problems.append(f"rule {name}: {answer.get('error', answer)}")
        elif bool(answer["data"]["result"]) == (name in expect_empty):
            problems.append(f"rule {name}: {len(answer['data']['result'])} series")
    assert not problems, "\n".join(problems)

    # Prometheus itself evaluates the rules: the alerts with data are pending, and the
    # label plumbing (relabelled namespace and pod) reaches them.
    pending = {
        (r["metric"]["alertname"], r["metric"].get("pod", ""), r["metric"].get("scenario", ""))
        for r in stack.query('ALERTS{alertstate="pending"}')["data"]["result"]
    }
    for alert in [
        ("ProberTargetDown", "", "broken"),
        ("ProberComponentDown", "", "broken"),
        ("ProberReplicaFailing", "prober-b", "sign-in"),
        ("ProberRunErrors", "prober-b", "bad-import"),
        ("ProberStale", "prober-b", "bad-import"),
        ("ProberScrapeFailing", "prober-gone", ""),
        ("ProberStepSlow", "", "sign-in"),
        ("ProberScenarioSlow", "", "slow"),
    ]:
        assert alert in pending, f"{alert} not pending; pending: {sorted(pending)}"
    assert not any(a[0] == "ProberTargetDown" and a[2] == "sign-in" for a in pending), (
        "one failing replica must not look like the target being down"
    )
    reasons = stack.query('prober_step_failures_total{scenario="broken"}')["data"]["result"]
    assert {
        (r["metric"]["step"], r["metric"]["reason"], r["metric"]["component"]) for r in reasons
    } == {("api_reachable", "navigation", "api")}
    down = stack.query('ALERTS{alertname="ProberComponentDown"}')["data"]["result"]
    assert {(r["metric"]["scenario"], r["metric"]["component"]) for r in down} == {
        ("broken", "api")
    }, "only the failing component of the failing scenario is down"
    check_sli_against_history(stack)


def history_share(replica: str, since: float, until: float) -> tuple[int, int]:
    """(successes, valid runs) of sign-in that ended in (since, until], from /api/runs."""
    status, body = http_get(f"{replica}/api/runs?scenario=sign-in&limit=500")
    assert status == 200, body
    ended = [r for r in json.loads(body)["runs"] if since < r["ended_at"] <= until]
    valid = [r for r in ended if r["result"] != "error"]
    return sum(r["result"] == "success" for r in valid), len(valid)


def check_sli_against_history(stack: Prometheus) -> None:
    """The generated availability SLI, evaluated by Prometheus, against prober's history.

    Called by the test below: a stack of its own would double this module's wall time.

    sign-in succeeds on prober-a and fails on prober-b: the SLI is the share of all valid
    runs of both replicas that succeeded, which only a sum across replicas gets right.
    Prometheus saw the counters from its first scrape of each replica on: history is
    counted over the same span, taken from the raw samples' timestamps.
    """
    problems: list[str] = []
    for _ in range(10):
        stack.check_alive()
        samples = stack.query('prober_scenario_runs_total{scenario="sign-in"}[5m]')
        spans = {
            r["metric"]["pod"]: (float(r["values"][0][0]), float(r["values"][-1][0]))
            for r in samples["data"]["result"]
        }
        recorded = stack.query(
            'prober:slo_errors:ratio_rate5m{scenario="sign-in", slo="availability", step=""}'
        )["data"]["result"]
        counted = {pod: history_share(stack.replicas[pod], *spans[pod]) for pod in spans}
        good = sum(g for g, _ in counted.values())
        valid = sum(v for _, v in counted.values())
        assert set(counted) == {"prober-a", "prober-b"}
        assert counted["prober-a"][0] > 0 and counted["prober-b"][1] > counted["prober-b"][0]
        (series,) = recorded
        assert "pod" not in series["metric"], "the SLI must be summed across replicas"
        sli = 1 - float(series["value"][1])
        # rate() extrapolates each series by up to a scrape interval (1s of about a minute).
        if abs(sli - good / valid) <= 0.02:
            break
        problems.append(f"SLI {sli:.4f} vs history {good}/{valid} = {good / valid:.4f}")
        time.sleep(1)
    else:
        pytest.fail("; ".join(problems))
    # The latency objective's 1.7 s has its own bucket, exported by the real `serve`.
    assert stack.query('prober_scenario_duration_seconds_bucket{scenario="sign-in", le="1.7"}')[
        "data"
    ]["result"], "no le=1.7 bucket for the latency objective"
    budget = stack.value(
        'prober:slo_error_budget_remaining:ratio{scenario="sign-in", slo="availability"}'
    )
    # About half the runs fail against a 0.5% budget: it is spent many times over.
    assert budget < -10, budget


# --- without Prometheus: the dashboard file itself --------------------------------------


def test_dashboard_is_generated_and_current() -> None:
    sys.path.insert(0, str(ROOT / "dashboards"))
    try:
        import generate  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    assert DASHBOARD.read_text() == generate.render(), (
        "dashboards/grafana.json is stale: run python dashboards/generate.py"
    )


def test_dashboard_is_importable() -> None:
    """Datasource as a variable, the variables the issue names, a sane layout."""
    board = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "scenario", "pod"} <= set(variables)
    assert "__inputs" not in board and board["uid"] and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        assert p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            for used in re.findall(r"\$\{?(\w+)", t["expr"]):
                assert used in variables or used.startswith("__"), (p["title"], used)
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for needed in (
        "success state",
        "success ratio",
        "scenario duration",
        "step duration",
        "failures by step and reason",
        "runs by result",
        "since last success",
    ):
        assert needed in titles, needed
