"""The JSON API under /api, documented in prober/http/openapi.yaml (the status page at / is
prober.http.statuspage).

Reads are unauthenticated, like /metrics: they show what the prober sees, with every
value that came from the environment masked. Triggering a run launches a browser against
a real target, so it needs the bearer token (PROBER_API_TOKEN), is off without one, and
is rate-limited.

A triggered run answers 202 at once with the run id and a Location to poll, rather than
holding the request open for up to a timeout (times retries): proxies and CLI clients
give up long before a slow, failing run ends. If the scenario is already running the
answer is 409, not a queued run: the run in flight will report a fresh result within one
timeout, and a queue would let triggers pile up behind a hung target.
"""

import asyncio
import hmac
import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from prober.contracts.result import Outcome, new_run_id
from prober.contracts.secrets import Redactor
from prober.http.ratelimit import TriggerLimiter
from prober.record.history import History, RunRecord
from prober.schedule.scheduler import ScenarioBusyError, Scheduler

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
CONTENT_TYPES = {
    ".png": "image/png",
    ".zip": "application/zip",
    ".json": "application/json",
    ".har": "application/json",  # HAR is JSON; it has no registered type of its own
}


@dataclass
class Api:
    """What the handlers need; `pending` holds runs triggered here that have not ended."""

    scheduler: Scheduler
    history: History
    redact: Redactor
    token: str | None
    artifacts_dir: Path | None
    limiter: TriggerLimiter
    pending: dict[str, str] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


API_KEY = web.AppKey("api", Api)


def install(app: web.Application, api: Api) -> None:
    """Add the API routes to the app from prober.http.server.make_app (before it starts)."""
    app[API_KEY] = api
    app.middlewares.append(_json_errors)
    app.on_cleanup.append(_cancel_triggered)
    app.router.add_get("/api/openapi.yaml", openapi)
    app.router.add_get("/api/scenarios", scenarios)
    app.router.add_post("/api/scenarios/{name}/runs", trigger)
    app.router.add_get("/api/runs", runs)
    app.router.add_get("/api/runs/{run_id}", run)
    app.router.add_get("/api/runs/{run_id}/artifacts/{name}", artifact)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 404/405 answers are text; API clients get JSON like everywhere else."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        allow = exc.headers.get("Allow")
        return error(exc.status, exc.reason, headers={"Allow": allow} if allow else None)
    return response


def artifact_url(run_id: str, name: str) -> str:
    return f"/api/runs/{quote(run_id, safe='')}/artifacts/{quote(name, safe='')}"


def run_json(record: RunRecord, redact: Redactor) -> dict[str, Any]:
    data = record.result.to_json()
    data["state"] = "finished"
    data["ended_at"] = record.ended_at
    data["error"] = redact(data["error"]) if data["error"] else None
    data["artifacts"] = [
        {"name": name, "url": artifact_url(record.run_id, name)} for name in record.result.artifacts
    ]
    return data


def masked(value: Any, redact: Redactor) -> Any:
    """Every string in a config structure with secret values masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: masked(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item, redact) for item in value]
    return value


async def openapi(request: web.Request) -> web.Response:
    text = resources.files("prober.http").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/yaml")


async def scenarios(request: web.Request) -> web.Response:
    api = request.app[API_KEY]
    listed = []
    for name, scenario in sorted(api.scheduler.scenarios.items()):
        last = await api.history.runs(scenario=name, limit=1)
        listed.append(
            {
                "name": name,
                "running": api.scheduler.is_running(name),
                "config": masked(scenario.model_dump(mode="json", exclude_none=True), api.redact),
                "last_run": run_json(last[0], api.redact) if last else None,
            }
        )
    return web.json_response({"scenarios": listed})


async def runs(request: web.Request) -> web.Response:
    api = request.app[API_KEY]
    query = request.query
    raw_limit = query.get("limit", str(DEFAULT_LIMIT))
    if not re.fullmatch(r"[0-9]{1,6}", raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        return error(400, f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw_limit!r}")
    results = None
    if "result" in query:
        try:
            results = [Outcome(query["result"])]
        except ValueError:
            allowed = ", ".join(o.value for o in Outcome)
            return error(400, f"result must be one of {allowed}, got {query['result']!r}")
    scenario = query.get("scenario")
    found = await api.history.runs(scenario=scenario, results=results, limit=int(raw_limit))
    # A scenario no longer configured may still have history worth seeing; only a name
    # that is neither configured nor in history is unknown.
    if (
        scenario is not None
        and not found
        and scenario not in api.scheduler.scenarios
        and not await api.history.runs(scenario=scenario, limit=1)
    ):
        return error(404, f"unknown scenario {scenario!r}")
    return web.json_response({"runs": [run_json(r, api.redact) for r in found]})


async def run(request: web.Request) -> web.Response:
    api = request.app[API_KEY]
    run_id = request.match_info["run_id"]
    record = await api.history.get(run_id)
    if record is not None:
        return web.json_response(run_json(record, api.redact))
    if run_id in api.pending:
        return web.json_response(
            {"run_id": run_id, "scenario": api.pending[run_id], "state": "pending"}
        )
    return error(404, f"no run with id {run_id!r}")


async def artifact(request: web.Request) -> web.StreamResponse:
    """Only names the run lists are served, and only as plain names inside the directory."""
    api = request.app[API_KEY]
    run_id, name = request.match_info["run_id"], request.match_info["name"]
    record = await api.history.get(run_id)
    if record is None:
        return error(404, f"no run with id {run_id!r}")
    if name not in record.result.artifacts or api.artifacts_dir is None:
        return error(404, f"run {run_id!r} has no artifact named {name!r}")
    path = api.artifacts_dir / name
    if Path(name).name != name or path.resolve().parent != api.artifacts_dir.resolve():
        return error(404, f"run {run_id!r} has no artifact named {name!r}")
    if not path.is_file():
        return error(404, f"artifact {name!r} no longer exists (removed by retention?)")
    content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return web.FileResponse(
        path, headers={"Content-Type": content_type, "X-Content-Type-Options": "nosniff"}
    )


async def trigger(request: web.Request) -> web.Response:
    api = request.app[API_KEY]
    denied = _authorize(request, api.token)
    if denied is not None:
        return denied
    name = request.match_info["name"]
    if name not in api.scheduler.scenarios:
        return error(404, f"unknown scenario {name!r}")
    # A run we accepted may not have taken the scenario's lock yet; it is busy all the same.
    if api.scheduler.is_running(name) or name in api.pending.values():
        return error(409, f"scenario {name!r} is running; try again when it has finished")
    wait = api.limiter.retry_after(name)
    if wait:
        return error(
            429,
            f"too many triggered runs; retry in {wait}s",
            headers={"Retry-After": str(wait)},
        )
    api.limiter.take(name)
    run_id = new_run_id()
    api.pending[run_id] = name
    task = asyncio.create_task(_run_triggered(api, name, run_id), name=f"trigger:{name}")
    api.tasks.add(task)
    task.add_done_callback(api.tasks.discard)
    log.info("run triggered over HTTP", extra={"scenario": name, "run_id": run_id})
    location = f"/api/runs/{run_id}"
    return web.json_response(
        {"run_id": run_id, "scenario": name, "state": "pending", "url": location},
        status=202,
        headers={"Location": location},
    )


def _authorize(request: web.Request, token: str | None) -> web.Response | None:
    if token is None:
        return error(403, "triggering runs is disabled: no API token is configured")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="prober"'}
    if scheme.lower() != "bearer" or not given.strip():
        return error(401, "a bearer token is required", headers=challenge)
    # aiohttp decodes header bytes that are not UTF-8 as surrogates; compare bytes, so a
    # header of raw bytes is a wrong token (401), not an encoding error (500).
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given_bytes, token.encode()):
        return error(401, "the bearer token is not valid", headers=challenge)
    return None


async def _run_triggered(api: Api, name: str, run_id: str) -> None:
    try:
        await api.scheduler.run_now(name, run_id)
    except ScenarioBusyError:  # a scheduled run took the lock between our check and now
        log.info("triggered run skipped: scenario already running", extra={"run_id": run_id})
    finally:
        api.pending.pop(run_id, None)


async def _cancel_triggered(app: web.Application) -> None:
    """At shutdown the scheduler has stopped the runs; do not leave their waiters behind."""
    api = app[API_KEY]
    for task in api.tasks:
        task.cancel()
    await asyncio.gather(*api.tasks, return_exceptions=True)
