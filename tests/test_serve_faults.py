"""`prober serve` as a real process under faults: signals, scrapes, read-only data dir, SIGHUP."""

import asyncio
import json
import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from prober.supervise import processes
from tests.conftest import PASSWORD, SIGN_IN_STEPS, USER, Target, leftover_processes
from tests.helpers import wait_until
from tests.supervise.test_faults import silent_server  # noqa: F401  (a fixture)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def sign_in(name: str = "sso-login", timeout: str = "30s") -> str:
    return f"\n  - name: {name}\n    interval: 1s\n    timeout: {timeout}\n" + textwrap.indent(
        textwrap.dedent(SIGN_IN_STEPS), "    "
    )


def goto(name: str, url: str, timeout: str = "30s") -> str:
    return f"""
  - name: {name}
    interval: 1s
    timeout: {timeout}
    steps:
      - name: page_loaded
        actions:
          - goto: "{url}"
"""


@dataclass
class Served:
    process: asyncio.subprocess.Process
    url: str
    log: Path

    def logs(self) -> list[dict[str, object]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def finished(self) -> list[dict[str, object]]:
        return [entry for entry in self.logs() if entry["msg"] == "run finished"]

    async def scrape(self) -> Samples:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/metrics") as r:
            assert r.status == 200
            text = await r.text()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def value(self, name: str, **labels: str) -> float:
        return (await self.scrape()).get((name, frozenset(labels.items())), 0.0)

    async def until(self, name: str, value: float, within: float = 60, **labels: str) -> None:
        async with asyncio.timeout(within):
            while await self.value(name, **labels) != value:  # noqa: ASYNC110  (another process)
                await asyncio.sleep(0.1)

    async def stop(self, within: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), within)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path, target: Target, clean_env: None) -> AsyncIterator[Serve]:
    started: list[Served] = []

    async def start(
        scenarios: str,
        env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
        signal_while_starting: signal.Signals | None = None,
    ) -> Served:
        """`signal_while_starting` is sent every 0.1 s from 0.2 s after exec until it is up."""
        config = tmp_path / "scenarios.yaml"
        config.write_text("scenarios:" + scenarios)
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        environment = {
            **os.environ,
            "PROBER_CONFIG": str(config),
            "PROBER_LISTEN": f"127.0.0.1:{port}",
            "PROBER_MAX_START_OFFSET": "0s",
            "PROBER_LOG_FORMAT": "json",
            "APP_URL": target.url,
            "PROBE_USER": USER,
            "PROBE_PASSWORD": PASSWORD,
            **(env or {}),
        }
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *wrapper,
                sys.executable,
                "-m",
                "prober",
                "serve",
                env=environment,
                stderr=stderr,
                cwd=Path(__file__).parent.parent,
            )
        served = Served(process, f"http://127.0.0.1:{port}", log)
        started.append(served)
        async with aiohttp.ClientSession() as session:

            async def up() -> bool:
                try:
                    async with session.get(f"{served.url}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            for attempt in range(300):
                if signal_while_starting is not None and attempt >= 2:
                    process.send_signal(signal_while_starting)
                if await up():
                    return served
                assert process.returncode is None, log.read_text()
                await asyncio.sleep(0.1)
        raise AssertionError("prober serve did not come up: " + log.read_text())

    yield start
    for served in started:
        if served.process.returncode is None:
            served.process.kill()
            await served.process.wait()


async def test_fifty_concurrent_scrapes_during_runs_and_location_on_every_metric(
    serve: Serve,
) -> None:
    closed_port = free_port()
    served = await serve(
        sign_in() + goto("refused", f"http://127.0.0.1:{closed_port}/"),
        env={"PROBER_LOCATION": "eu-west-1", "PROBER_MAX_CONCURRENCY": "2"},
    )

    async def runs() -> float:
        samples = await served.scrape()
        return sum(v for (name, _), v in samples.items() if name == "prober_scenario_runs_total")

    await wait_until(lambda: len(served.finished()) >= 2, within=90)
    async with aiohttp.ClientSession() as session:

        async def one() -> str:
            async with session.get(f"{served.url}/metrics") as response:
                assert response.status == 200
                return await response.text()

        for _ in range(3):
            bodies = await asyncio.gather(*(one() for _ in range(50)))
            for body in bodies:
                list(text_string_to_metric_families(body))  # every one parses
            await asyncio.sleep(0.5)

    # Every finished run is counted exactly once: logs read before <= counter <= after.
    before = len(served.finished())
    counted = await runs()
    after = len(served.finished())
    assert before <= counted <= after
    assert len({entry["run_id"] for entry in served.finished()}) == len(served.finished())

    samples = await served.scrape()
    prober_samples = [labels for (name, labels) in samples if name.startswith("prober_")]
    assert prober_samples
    assert all(("location", "eu-west-1") in labels for labels in prober_samples)
    results = {(e["scenario"], e["result"], e["reason"]) for e in served.finished()}
    assert ("refused", "failure", "navigation") in results
    assert ("sso-login", "success", None) in results
    assert await served.stop() == 0


async def test_sigterm_lets_the_run_in_flight_finish_and_record(
    serve: Serve, target: Target
) -> None:
    target.delays["/"] = 3.0
    served = await serve(sign_in(), env={"PROBER_GRACE_PERIOD": "40s"})
    await wait_until(lambda: any(e["msg"] == "serving" for e in served.logs()))
    await served.until("prober_scenario_running", 1, scenario="sso-login")
    assert await served.stop() == 0
    messages = [e["msg"] for e in served.logs()]
    stopping = messages.index("stopping")
    assert "run finished" in messages[stopping:], messages
    assert "run cancelled at shutdown" not in messages


async def test_second_sigterm_cancels_runs_now(
    serve: Serve,
    silent_server: tuple[str, asyncio.Event],  # noqa: F811  (the fixture)
) -> None:
    url, connected = silent_server
    served = await serve(goto("stuck", url, timeout="120s"), env={"PROBER_GRACE_PERIOD": "100s"})
    await asyncio.wait_for(connected.wait(), 60)
    served.process.send_signal(signal.SIGTERM)
    await wait_until(lambda: any(e["msg"] == "stopping" for e in served.logs()))
    # Well under the 100 s grace and 120 s timeout: the second signal cut the run short.
    assert await served.stop(within=30) == 0
    messages = [e["msg"] for e in served.logs()]
    assert "second signal: cancelling in-flight runs now" in messages
    assert "run cancelled at shutdown" in messages


async def test_probing_goes_on_when_the_data_dir_turns_read_only(
    serve: Serve, tmp_path: Path
) -> None:
    """History (SQLite) and artifacts write PROBER_DATA_DIR: once it cannot be written,
    runs still happen and are recorded."""
    data = tmp_path / "data"
    data.mkdir()
    shell = f'mount --bind "{data}" "{data}" && exec "$@"'
    served = await serve(
        sign_in(),
        env={"PROBER_DATA_DIR": str(data)},
        wrapper=["unshare", "-m", "--propagation", "private", "sh", "-c", shell, "sh"],
    )
    await wait_until(lambda: len(served.finished()) >= 1, within=90)
    in_namespace = ["nsenter", "-t", str(served.process.pid), "-m"]
    # The database is open, so its mount is busy and cannot be remounted read-only: a
    # read-only bind stacked on top turns every new file (journal, artifact) into EROFS.
    for command in (
        ["mount", "--bind", str(data), str(data)],
        ["mount", "-o", "remount,bind,ro", str(data)],
    ):
        mount = await asyncio.create_subprocess_exec(*in_namespace, *command)
        assert await mount.wait() == 0, command
    touch = await asyncio.create_subprocess_exec(
        *in_namespace, "touch", str(data / "x"), stderr=asyncio.subprocess.PIPE
    )
    _, error = await touch.communicate()
    assert b"Read-only file system" in error

    done = len(served.finished())
    await wait_until(lambda: len(served.finished()) >= done + 2, within=90)
    assert all(e["result"] == "success" for e in served.finished()[done:])
    assert (
        await served.value("prober_scenario_runs_total", scenario="sso-login", result="success")
        >= done + 2
    )
    # Successful runs keep no artifacts, so none of them failed to keep any.
    assert await served.value("prober_artifact_failures_total", scenario="sso-login") == 0
    assert all(e.get("artifact_error") is None for e in served.finished())
    warned = [e for e in served.logs() if str(e["msg"]).startswith("cannot keep failure")]
    assert warned == []
    assert await served.stop() == 0


async def test_sighup_reloads_without_waiting_for_the_poll(serve: Serve, tmp_path: Path) -> None:
    closed_port = free_port()
    refused = goto("refused", f"http://127.0.0.1:{closed_port}/")
    served = await serve(refused, env={"PROBER_CONFIG_POLL_INTERVAL": "1h"})
    (tmp_path / "scenarios.yaml").write_text(
        "scenarios:" + refused + goto("added", f"http://127.0.0.1:{closed_port}/")
    )
    served.process.send_signal(signal.SIGHUP)
    await served.until("prober_scenario_interval_seconds", 1, within=10, scenario="added")
    assert await served.value("prober_config_last_reload_successful") == 1
    assert await served.stop() == 0


def _bomb() -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def _merge_bomb() -> str:
    lines = ["m0: &m0 {a: 1, b: 2}"]
    lines += [f"m{i}: &m{i} {{x: {{<<: *m{i - 1}}}, y: {{<<: *m{i - 1}}}}}" for i in range(1, 30)]
    return "\n".join(lines) + "\n"


# One representative per category of hostile or wrong file: (file text, what the log says).
BAD_RELOADS = {
    "tag value": ("scenarios: !!int abc\n", "the value is not a valid !!int"),
    "impossible date": (
        "scenarios:"
        + goto("late", "http://127.0.0.1:1/").replace("interval: 1s", "interval: 2026-13-45"),
        "invalid duration '2026-13-45'",
    ),
    "self-referencing anchor": ("scenarios: &a [*a]\n", "an anchor is used inside itself"),
    "nesting 600 deep": ("scenarios: " + "[" * 600 + "]" * 600 + "\n", "nested deeper than 64"),
    "alias bomb": (_bomb() + "scenarios: []\n", "an alias bomb is refused"),
    "merge-key bomb": (_merge_bomb() + "scenarios: []\n", "an alias bomb is refused"),
    "file too large": ("#" * (2 * 1024 * 1024) + "\n", "refused unread"),
    "duplicate key": ("scenarios: []\nscenarios: []\n", "key 'scenarios' appears twice"),
    "boolean interval": (
        "scenarios:"
        + goto("flag", "http://127.0.0.1:1/").replace("interval: 1s", "interval: true"),
        "not a boolean",
    ),
    "400-digit duration": (
        "scenarios:"
        + goto("long", "http://127.0.0.1:1/").replace("interval: 1s", f"interval: {'9' * 400}s"),
        "duration is too long",
    ),
    "${VAR} in a name": (
        "scenarios:" + goto("${PROBE_USER}", "http://127.0.0.1:1/"),
        "names are metric labels",
    ),
    "not a URL": ("scenarios:" + goto("nourl", "not a url at all"), "not an absolute http(s) URL"),
    "unknown selector engine": (
        "scenarios:"
        + goto("engine", "http://127.0.0.1:1/")
        + '          - click: "nosuchengine=foo"\n',
        "unknown selector engine 'nosuchengine'",
    ),
    "script with a syntax error": (
        "scenarios:\n"
        "  - {name: scripted, interval: 1m, timeout: 30s, script: 'reload_broken:run'}\n",
        "module 'reload_broken' has a syntax error",
    ),
}


async def test_every_bad_file_is_rejected_live_and_the_next_good_one_applies(
    serve: Serve, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/"
    served = await serve(goto("first", closed), env={"PROBER_CONFIG_POLL_INTERVAL": "1h"})
    config = tmp_path / "scenarios.yaml"
    (tmp_path / "reload_broken.py").write_text("async def run(page, step, params)\n    pass\n")
    process = psutil.Process(served.process.pid)

    def rejections() -> list[dict[str, object]]:
        return [e for e in served.logs() if str(e["msg"]).startswith("scenario file rejected")]

    for index, (category, (text, why)) in enumerate(BAD_RELOADS.items()):
        before = len(rejections())
        config.write_text(text)
        served.process.send_signal(signal.SIGHUP)
        await wait_until(lambda: len(rejections()) > before, within=60)  # noqa: B023
        assert why in str(rejections()[-1]["why"]), category
        # /metrics is rendered from a cache: it follows the log line shortly.
        await served.until("prober_config_last_reload_successful", 0, within=30)
        assert await served.value("prober_scenario_interval_seconds", scenario="first") == 1
        assert process.memory_info().rss < 500 * 1024 * 1024, category

        good = f"good_{index}"
        config.write_text("scenarios:" + goto("first", closed) + goto(good, closed))
        served.process.send_signal(signal.SIGHUP)
        await served.until("prober_scenario_interval_seconds", 1, within=60, scenario=good)
        await served.until("prober_config_last_reload_successful", 1, within=30)

    log = served.log.read_text()
    assert "Traceback" not in log
    assert PASSWORD not in log and USER not in log
    assert await served.stop() == 0


async def test_sighup_while_starting_does_not_kill_it(serve: Serve) -> None:
    """Hangups all through the second or more of imports and set-up, then a normal one."""
    closed_port = free_port()
    served = await serve(
        goto("refused", f"http://127.0.0.1:{closed_port}/"), signal_while_starting=signal.SIGHUP
    )
    await served.until("prober_config_last_reload_successful", 1, within=10)
    served.process.send_signal(signal.SIGHUP)
    await asyncio.sleep(0.5)
    assert served.process.returncode is None
    assert await served.stop() == 0
    assert not [e for e in served.logs() if e["level"] == "error"]


async def test_scratch_of_a_killed_serve_is_swept_by_the_next_start(
    serve: Serve,
    tmp_path: Path,
    silent_server: tuple[str, asyncio.Event],  # noqa: F811
) -> None:
    """SIGKILL leaves the workers' TMPDIRs; the next start removes those, and only those."""
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    env = {"TMPDIR": str(scratch_root)}
    first = await serve(goto("hangs", silent_server[0], timeout="60s"), env=env)
    await wait_until(lambda: len(list(scratch_root.glob("prober-*"))) >= 1, within=30)
    left = sorted(scratch_root.glob("prober-*"))
    first.process.kill()
    await first.process.wait()
    # Its workers die with it (PR_SET_PDEATHSIG); re-parented to us, they are reaped here.
    started = time.monotonic()

    def all_gone() -> bool:
        processes.reap_orphans(exclude=set())
        return not leftover_processes()

    await wait_until(all_gone, within=30)
    print(f"workers of the killed serve gone after {time.monotonic() - started:.1f}s")
    assert left and all(path.is_dir() for path in left)

    namespace = os.readlink("/proc/self/ns/pid")
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    me = psutil.Process()
    decoys = {
        # Alive: this test process.
        "prober-alive": f"{namespace} {me.pid} {me.create_time():.2f}\n",
        # Another pid namespace: its pids cannot be judged from here.
        "prober-other-namespace": f"pid:[1] {gone.pid} 0.00\n",
        # No record: whose it is cannot be told.
        "prober-no-record": None,
        # Not our pattern, though its owner is dead.
        "someone-else": f"{namespace} {gone.pid} 0.00\n",
    }
    for name, record in decoys.items():
        (scratch_root / name).mkdir()
        if record is not None:
            (scratch_root / name / ".prober-owner").write_text(record)
    dead_target = tmp_path / "elsewhere"
    dead_target.mkdir()
    (dead_target / ".prober-owner").write_text(f"{namespace} {gone.pid} 0.00\n")
    (scratch_root / "prober-symlink").symlink_to(dead_target)

    second = await serve(goto("refused", f"http://127.0.0.1:{free_port()}/"), env=env)
    assert not any(path.exists() for path in left)
    # What is left: the decoys, and the new serve's own workers' scratch.
    remaining = {p.name for p in scratch_root.iterdir()}
    assert {*decoys, "prober-symlink"} <= remaining
    assert (dead_target / ".prober-owner").is_file()
    assert await second.stop() == 0
