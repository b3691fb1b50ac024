"""End to end through `prober serve`'s wiring: real Chromium, real target, real HTTP."""

import asyncio
import json
import logging
import os
import signal
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from prober.contracts.config import Config
from prober.record.history import DB_NAME
from prober.service import serve
from prober.settings import Settings
from tests.apicheck import ApiClient
from tests.conftest import PASSWORD, sign_in_scenario

TOKEN = "e2e-token-7c1d"
CONFIG = "scenarios:\n" + sign_in_scenario("sign-in", interval="1h", timeout="30s")
STEPS = ["app_page_loaded", "idp_page_loaded", "credentials_accepted", "back_in_app"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serving(config: Config, data_dir: Path, **settings: Any) -> AsyncIterator[ApiClient]:
    """`prober serve` in this process; stopped with SIGTERM like a pod."""
    url: list[str] = []
    started = asyncio.Event()

    async def on_started(address: str) -> None:
        url.append(address)
        started.set()

    options = {
        "listen": f"127.0.0.1:{free_port()}",
        "data_dir": data_dir,
        "api_token": TOKEN,
        "grace_period": "10s",
        **settings,
    }
    task = asyncio.create_task(serve(Settings(**options), config, on_started=on_started))
    await asyncio.wait_for(started.wait(), 30)
    try:
        async with aiohttp.ClientSession() as session:
            yield ApiClient(session, url[0])
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, 60) == 0


async def wait_for_runs(client: ApiClient, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs: list[dict[str, Any]] = (await client.get("/api/runs")).json["runs"]
        if len(runs) >= count:
            return runs
        await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {count} runs in /api/runs after 60s")


async def metric(client: ApiClient, line_start: str) -> str:
    text = (await client.get("/metrics")).body.decode()
    return next(line for line in text.splitlines() if line.startswith(line_start))


@pytest.mark.usefixtures("clean_env")
async def test_real_runs_are_in_history_and_survive_a_restart(
    tmp_path: Path, write_config: Callable[[str], Path], load: Callable[[Path], Config]
) -> None:
    config = load(write_config(CONFIG))
    data_dir = tmp_path / "data"
    # No start offset: the scheduled run starts at once.
    async with serving(config, data_dir, max_start_offset="0s") as client:
        [scheduled] = await wait_for_runs(client, 1)
        assert scheduled["result"] == "success", scheduled["error"]
        assert [s["name"] for s in scheduled["steps"]] == STEPS
        accepted = await client.post(
            "/api/scenarios/sign-in/runs", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert accepted.status == 202, accepted.json
        runs = await wait_for_runs(client, 2)
        assert runs[0]["run_id"] == accepted.json["run_id"] and runs[0]["result"] == "success"
        assert await metric(client, "prober_history_degraded") == "prober_history_degraded 0.0"
        page = await client.get("/")
        assert b"sign-in" in page.body and PASSWORD.encode() not in page.body

    assert (data_dir / DB_NAME).is_file()
    async with serving(config, data_dir, max_start_offset="1h") as client:
        after = (await client.get("/api/runs")).json["runs"]
        assert {r["run_id"] for r in runs} <= {r["run_id"] for r in after}
        scenarios = (await client.get("/api/scenarios")).json["scenarios"]
        assert scenarios[0]["last_run"]["result"] == "success"


@pytest.mark.usefixtures("clean_env")
async def test_corrupt_history_degrades_and_probing_goes_on(
    tmp_path: Path, write_config: Callable[[str], Path], load: Callable[[Path], Config]
) -> None:
    config = load(write_config(CONFIG))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / DB_NAME).write_bytes(os.urandom(8192))
    async with serving(config, data_dir, max_start_offset="0s") as client:
        [run] = await wait_for_runs(client, 1)
        assert run["result"] == "success", run["error"]
        assert await metric(client, "prober_history_degraded") == "prober_history_degraded 1.0"
        runs_total = 'prober_scenario_runs_total{result="success",scenario="sign-in"}'
        assert await metric(client, runs_total) == f"{runs_total} 1.0"
        page = await client.get("/")
        assert b"history is kept in memory only" in page.body


@pytest.mark.usefixtures("clean_env")
async def test_bad_rows_in_history_are_skipped_logged_once_and_counted(
    tmp_path: Path,
    write_config: Callable[[str], Path],
    load: Callable[[Path], Config],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = load(write_config(CONFIG))
    data_dir = tmp_path / "data"
    async with serving(config, data_dir, max_start_offset="0s") as client:
        [good] = await wait_for_runs(client, 1)
    stored = json.loads(json.dumps(good))
    for key in ("state", "ended_at"):
        stored.pop(key)
    stored["artifacts"] = []
    # Each newer than the good run, so every read of the scenario's last run meets them.
    bad_rows = {
        "unknown-result": ("bogus", json.dumps({**stored, "result": "bogus"}), 2e9),
        "garbage-json": ("success", "{not json", 2e9 + 1),
        "wrong-types": ("success", json.dumps({**stored, "steps": "many"}), 2e9 + 2),
        "huge-number": (
            "success",
            json.dumps(stored).replace('"duration_seconds": ', '"duration_seconds": 1e999, "x": '),
            2e9 + 3,
        ),
        "not-an-object": ("success", "[1, 2]", 2e9 + 4),
        "text-ended-at": ("success", json.dumps(stored), "yesterday"),
    }
    with sqlite3.connect(data_dir / DB_NAME) as db:
        for run_id, (result, run, ended_at) in bad_rows.items():
            db.execute(
                "INSERT INTO runs VALUES (?, 'sign-in', ?, ?, ?)", (run_id, result, ended_at, run)
            )
    caplog.set_level(logging.ERROR, logger="prober.record.history")
    async with serving(config, data_dir, max_start_offset="1h") as client:
        for _ in range(3):
            runs = await client.get("/api/runs")
            assert runs.status == 200 and [r["run_id"] for r in runs.json["runs"]] == [
                good["run_id"]
            ]
            scenarios = await client.get("/api/scenarios")
            assert scenarios.status == 200
            assert scenarios.json["scenarios"][0]["last_run"]["run_id"] == good["run_id"]
            page = await client.get("/")
            assert page.status == 200 and b"sign-in" in page.body
            for run_id in bad_rows:
                assert (await client.get(f"/api/runs/{run_id}")).status == 404
            assert (await client.get(f"/api/runs/{good['run_id']}")).status == 200
        counted = "prober_history_unreadable_rows_total"
        assert await metric(client, counted) == f"{counted} {float(len(bad_rows))}"
        assert await metric(client, "prober_history_degraded") == "prober_history_degraded 0.0"
    skipped = [r for r in caplog.records if r.getMessage().startswith("skipping a run")]
    assert sorted(r.__dict__["run_id"] for r in skipped) == sorted(bad_rows)
