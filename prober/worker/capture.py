"""Worker side of failure artifacts: what the page looked like and did when a run failed.

- a screenshot (PNG) at the moment of failure, password fields masked;
- a Playwright trace (zip, `playwright show-trace`), recorded for every run because
  nobody knows in advance which run will fail, kept on failure (or always, if asked);
- the browser's console errors and uncaught page errors (JSON);
- a HAR of the run's requests (`{run_id}-network.har`, bodies omitted), recorded for
  every run like the trace and kept on failure.

Secrets: the trace records `fill` values, form fields, request bodies and DOM snapshots
with input values, so every file inside it is scrubbed (see `scrub_trace`) before the
zip gets its final name. The trace records DOM snapshots but no screencast: snapshots
are text we can scrub, screencast frames are pixels showing whatever was typed in
plain text fields. Console text is redacted entry by entry. The HAR is scrubbed value
by value (request bodies, URLs, headers), and the values of credential headers
(Cookie, Set-Cookie, Authorization) and cookies are masked whoever set them, in the HAR
and in the trace's network log alike: a session cookie lets its reader act as the
probe user. The screenshot masks text
fields and every element whose text shows a secret (see `Capture._masks`); text drawn
in other ways (images, canvas, split across elements) cannot be found, which
docs/artifacts.md says.

Every write goes to the run's staging directory and is renamed into place when
complete; the parent removes the staging directory afterwards (see prober.supervise.artifacts).
"""

import asyncio
import contextlib
import hashlib
import json
import os
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, ConsoleMessage, Locator, Page
from playwright.async_api import Error as PlaywrightError

from prober.contracts.artifacts import artifact_name, staging_dir
from prober.contracts.protocol import ArtifactFailed, ArtifactKept, Event
from prober.contracts.secrets import MASK, Redactor, is_short
from prober.worker.failures import describe

MAX_CONSOLE_ENTRIES = 200
MAX_CONSOLE_TEXT = 4000
# Every field, not only passwords: a login filled from ${PROBE_USER} is a secret as well
# (every expanded value is), and pixels cannot be scrubbed after the fact.
MASKED = (
    "input:not([type=hidden]):not([type=submit]):not([type=button]), textarea, [contenteditable]"
)
_RAW_TRACE = "raw-trace.zip"
_RAW_HAR = "raw.har"
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_RESOURCE = re.compile(r"resources/([0-9a-f]{40})(\.\w+)?")


class Capture:
    """Collects console errors during the run and writes artifacts when it ends."""

    def __init__(
        self, directory: Path, run_id: str, redact: Redactor, emit: Callable[[Event], None]
    ) -> None:
        self._directory = directory
        self._staging = staging_dir(directory, run_id)
        self._run_id = run_id
        self._redact = redact
        self._emit = emit
        self._console: list[dict[str, Any]] = []
        self._dropped = 0
        self._tracing = False
        self._har = False
        self._broken = False
        # The first problem, reported only once the run has something to keep: a run that
        # keeps nothing (a success) has lost no artifacts, whatever state the disk is in.
        self._problem: str | None = None
        self._problem_reported = False

    def prepare(self) -> Path | None:
        """Create the staging directory, which is also where the browser writes its trace."""
        try:
            self._staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(exc)
            return None
        return self._staging

    def har_path(self) -> Path | None:
        """Where the context records its HAR (written when it closes); None: no HAR.

        Bodies are omitted (`record_har_content="omit"`): they are the bulk of a HAR,
        the trace keeps them, and a login POST's body is the credentials.
        """
        if self._broken:
            return None
        self._har = True
        return self._staging / _RAW_HAR

    async def start(self, context: BrowserContext, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        if self._broken:
            return
        try:
            await context.tracing.start(snapshots=True, screenshots=False, sources=False)
            self._tracing = True
        except PlaywrightError as exc:
            self._fail(exc)

    async def failed(self, page: Page, deadline: float) -> None:
        """Screenshot first (the most telling, and cheap), then the console."""
        try:
            await self._keep_failure(page, deadline)
        finally:
            self._report_problem()

    async def _keep_failure(self, page: Page, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError, PlaywrightError):
            async with asyncio.timeout_at(deadline):
                remaining_ms = max(1.0, (deadline - loop.time()) * 1000)
                png = await page.screenshot(
                    type="png", mask=self._masks(page), timeout=remaining_ms
                )
                self._store("screenshot", "png", png)
        entries = [*self._console]
        if self._dropped:
            entries.append({"type": "prober", "text": f"{self._dropped} more entries dropped"})
        # Masked value by value, then serialised: masking the JSON text could cut into it.
        text = json.dumps(self._redact.value(entries), ensure_ascii=False, indent=1).encode()
        self._store("console", "json", text)

    def _masks(self, page: Page) -> list[Locator]:
        """Every text field, and every element whose text shows a secret.

        Pixels cannot be scrubbed afterwards, so this is the only chance. A short secret
        is matched as an element's whole text only: `1` is in half the page otherwise.
        """
        masks = [page.locator(MASKED)]
        for secret in self._redact.secrets:
            if secret.strip():
                masks.append(page.get_by_text(secret.strip(), exact=is_short(secret)))
        return masks

    async def keep_trace(self, context: BrowserContext, deadline: float) -> None:
        """Stop the trace, scrub it, and store it; skipped once past the deadline."""
        try:
            await self._keep_trace(context, deadline)
        finally:
            self._report_problem()

    async def _keep_trace(self, context: BrowserContext, deadline: float) -> None:
        if not self._tracing or self._broken:
            return
        raw = self._staging / _RAW_TRACE
        scrubbed = self._staging / artifact_name(self._run_id, "trace", "zip")
        try:
            async with asyncio.timeout_at(deadline):
                await context.tracing.stop(path=raw)
                # A thread keeps the deadline enforceable while a big trace is scrubbed.
                await asyncio.to_thread(scrub_trace, raw, scrubbed, self._redact)
            self._publish(scrubbed)
        except (TimeoutError, PlaywrightError):
            return
        except OSError as exc:
            self._fail(exc)
        finally:
            with contextlib.suppress(OSError):
                raw.unlink(missing_ok=True)

    async def keep_har(self, context: BrowserContext, deadline: float) -> None:
        """Close the context (which writes the HAR), scrub it and store it.

        Last of the artifacts: the context is gone afterwards.
        """
        if not self._har or self._broken:
            return
        raw = self._staging / _RAW_HAR
        try:
            async with asyncio.timeout_at(deadline):
                await context.close()
                har = await asyncio.to_thread(scrub_har, raw, self._redact)
            self._store("network", "har", har)
        except (TimeoutError, PlaywrightError):
            return
        except (OSError, ValueError) as exc:
            self._fail(exc)
        finally:
            with contextlib.suppress(OSError):
                raw.unlink(missing_ok=True)

    def _store(self, kind: str, ext: str, data: bytes) -> None:
        if self._broken:
            return
        path = self._staging / artifact_name(self._run_id, kind, ext)
        try:
            with path.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            self._publish(path)
        except OSError as exc:
            self._fail(exc)

    def _publish(self, path: Path) -> None:
        """Give a complete file its final name, then tell the parent about it."""
        os.replace(path, self._directory / path.name)
        self._emit(ArtifactKept(name=path.name))

    def _fail(self, exc: BaseException) -> None:
        """Note the first problem of the run; further attempts would only fail the same way."""
        if not self._broken:
            self._broken = True
            self._problem = describe(exc)

    def _report_problem(self) -> None:
        """Tell the parent, once, that artifacts this run wanted to keep could not be kept."""
        if self._problem is not None and not self._problem_reported:
            self._problem_reported = True
            self._emit(ArtifactFailed(error=self._problem))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location
            self._add("console.error", message.text, location.get("url"))

    def _on_page_error(self, error: PlaywrightError) -> None:
        self._add("pageerror", error.stack or error.message, None)

    def _add(self, kind: str, text: str, url: str | None) -> None:
        if len(self._console) >= MAX_CONSOLE_ENTRIES:
            self._dropped += 1
            return
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "type": kind,
            "text": self._redact(text)[:MAX_CONSOLE_TEXT],  # masked, then cut
        }
        if url:
            entry["url"] = url
        self._console.append(entry)


def scrub_har(source: Path, redact: Redactor) -> bytes:
    """The HAR with credential headers and cookies masked, then every string redacted.

    Parsed and masked value by value, so the result is still a valid HAR: a mask
    applied to the serialised text could cut into its structure.
    """
    har = json.loads(source.read_bytes())
    for entry in har.get("log", {}).get("entries", []):
        _mask_credentials(entry)
    return json.dumps(redact.value(har), ensure_ascii=False, indent=1).encode()


def _mask_credentials(entry: dict[str, Any]) -> None:
    """Mask a HAR entry's credential headers and cookies, whoever set them."""
    for message in (entry.get("request", {}), entry.get("response", {})):
        for header in message.get("headers", []):
            if str(header.get("name", "")).lower() in CREDENTIAL_HEADERS:
                header["value"] = MASK
        for cookie in message.get("cookies", []):
            cookie["value"] = MASK


def _scrub_network_log(data: bytes) -> bytes:
    """A trace's `*.network` member: one JSON event a line, each resource snapshot a HAR
    entry whose credential headers and cookies are masked as in the HAR. A line that is
    not such an event is kept as it is (the secret masker still runs over all of it)."""
    lines = []
    for line in data.split(b"\n"):
        try:
            event = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        if isinstance(event, dict) and isinstance(event.get("snapshot"), dict):
            _mask_credentials(event["snapshot"])
            line = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        lines.append(line)
    return b"\n".join(lines)


def scrub_trace(source: Path, target: Path, redact: Redactor) -> None:
    """Rewrite a trace zip with every secret spelling masked in every member.

    Its network log's credential headers and cookies are masked as the HAR's are.
    Resources (request and response bodies) are named by the SHA-1 of their content;
    a changed body gets the hash of its scrubbed content and references are updated,
    because the hash of `login=user&password=...` would let anyone test guesses.
    """
    members: list[tuple[str, bytes]] = []
    renamed: dict[bytes, bytes] = {}
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            raw = archive.read(info)
            data = raw
            if info.filename.endswith(".network"):
                data = _scrub_network_log(data)
            data = redact.bytes(data)
            members.append((info.filename, data))
            match = _RESOURCE.fullmatch(info.filename)
            if match and data != raw:
                new_hash = hashlib.sha1(data, usedforsecurity=False).hexdigest()
                renamed[match[1].encode()] = new_hash.encode()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in members:
            for old, new in renamed.items():
                name = name.replace(old.decode(), new.decode())
                data = data.replace(old, new)
            out.writestr(name, data)
    with target.open("rb") as file:
        os.fsync(file.fileno())
